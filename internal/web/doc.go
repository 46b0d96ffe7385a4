// Package web holds the pure rules of OpenWhisk's web actions
// (docs/webactions.md; OpenWhisk's core/controller/WebActions.scala):
// how a URL segment splits into an action name and a media extension, how an
// HTTP request becomes the action's argument object (the __ow_* fields, body
// parsing by content type, raw mode, the reserved and final checks), and how
// an activation result becomes an HTTP response for each extension (.json,
// .html, .svg, .text, .http), with OpenWhisk's messages for every refusal.
//
// Nothing here does I/O: the API layer reads the request, resolves and
// invokes the action, and writes what these functions return. Every function
// is safe for concurrent use.
package web
