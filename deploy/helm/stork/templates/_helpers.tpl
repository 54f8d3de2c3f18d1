{{/* The stork image, shared by the controller, the agents and the data movers. */}}
{{- define "stork.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Labels on every object: the selector labels of deploy/base plus Helm's own. */}}
{{- define "stork.labels" -}}
app.kubernetes.io/name: stork
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version }}
{{- end }}

{{/* Selector labels: the same as deploy/base's, so that the two install paths select alike. */}}
{{- define "stork.selector" -}}
app.kubernetes.io/name: stork
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* A file of deploy/base/manifests (copied into files/ by make generate) in the release's namespace. */}}
{{- define "stork.baseFile" -}}
{{ .root.Files.Get .file | replace "namespace: stork-system" (printf "namespace: %s" .root.Release.Namespace) }}
{{- end }}

{{- define "stork.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "stork.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
{{- end }}
