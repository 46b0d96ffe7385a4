// Package whisk is Eddy's vocabulary: the names, entities, records, messages
// and error kinds that every other package speaks. It imports only the
// standard library, and nothing in it does I/O.
//
// The shapes follow Apache OpenWhisk's:
// JSON field names are OpenWhisk's, so the REST API and the runtime protocol
// can marshal these types directly.
package whisk
