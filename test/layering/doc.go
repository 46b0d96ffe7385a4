// Package layering holds a test of the import graph: the role packages
// (api, controller, scheduler, invoker, queue) depend on the vocabulary
// package and on interfaces they declare, never on an adapter (a store, a
// bus, a container backend, etcd); only cmd/eddy and the test harnesses
// wire adapters in.
package layering
