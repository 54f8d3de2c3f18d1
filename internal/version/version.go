package version

// Version of this build; "dev" when built without ldflags.
var Version = "dev"
