// Package retry bounds how long a controller tries a failing step of an object's work again: the
// first failure opens a window (the object's status.retry), each further failure waits twice as
// long as the one before (Base up to Max), and once Limit has passed since the first failure the
// step gives up, and the object fails with the step's reason, the last error, and how often and
// how long it was tried. Nothing is retried forever, and the retrying is visible while it lasts.
//
// Layer: kit. May import: lib, api, engine, drivers, kit.
package retry
