// Package rpc is the gRPC surface of a scheduler: Fetch, the long poll by
// which a container's proxy asks its action's leader queue for the next
// activation, and CreateQueue, by which a controller asks a scheduler to host
// an action's queue. Messages are JSON (a gRPC codec registered on the
// connection, no generated code): the payloads are whisk types that are JSON
// already, as OpenWhisk's FetchActivation answers are.
//
// Errors cross the wire as gRPC statuses; KindToCode and CodeToKind are the
// one place whisk kinds map to gRPC codes.
package rpc
