// Package e2e holds Eddy's end-to-end tests: they build the eddy binary,
// start `eddy standalone` as a child process on loopback with its embedded
// defaults (embedded etcd, in-memory bus, SQLite) and drive it through the
// REST API and the CLI the way a user does, then look at what is left behind
// (etcd keys, processes) after idle timeouts and shutdown.
package e2e
