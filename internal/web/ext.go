package web

import "strings"

// The media extensions of a web action URL, without the dot.
const (
	ExtHTTP = "http"
	ExtJSON = "json"
	ExtHTML = "html"
	ExtSVG  = "svg"
	ExtText = "text"
)

// extensions in OpenWhisk's lookup order (WhiskWebActionsApi.mediaTranscoders).
var extensions = [...]string{ExtHTTP, ExtJSON, ExtHTML, ExtSVG, ExtText}

// SplitName splits the last segment of a web action URL into the action's
// name and its media extension. A known extension (".http", ".json",
// ".html", ".svg", ".text") is stripped; any other segment is the name as a
// whole with the default extension "http" (OpenWhisk does not enforce an
// extension, so "x.foo" names the action "x.foo").
func SplitName(seg string) (name, ext string) {
	for _, e := range extensions {
		if len(seg) > len(e)+1 && strings.HasSuffix(seg, e) && seg[len(seg)-len(e)-1] == '.' {
			return seg[:len(seg)-len(e)-1], e
		}
	}
	return seg, ExtHTTP
}
