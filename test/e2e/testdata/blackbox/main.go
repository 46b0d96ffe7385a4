// Command blackbox is a small static server that speaks the OpenWhisk
// runtime protocol on :8080 without any of Eddy's code, run FROM scratch as
// a blackbox action in the end-to-end tests: /init accepts anything once,
// /run answers {"echo": <value>, "activation": <activation_id>} and logs a
// line; both end with the log sentinel on stdout and stderr, as OpenWhisk's
// runtimes do.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
)

const sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

func main() {
	var mu sync.Mutex
	inited := false
	end := func() {
		fmt.Fprintln(os.Stdout, sentinel)
		fmt.Fprintln(os.Stderr, sentinel)
	}
	http.HandleFunc("/init", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		defer end()
		if inited {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":"Cannot initialize the action more than once."}`)
			return
		}
		inited = true
		fmt.Fprint(w, `{"ok":true}`)
	})
	http.HandleFunc("/run", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		defer end()
		var req struct {
			Value        json.RawMessage `json:"value"`
			ActivationID string          `json:"activation_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":%q}`, err.Error())
			return
		}
		fmt.Println("blackbox ran", req.ActivationID)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"echo": req.Value, "activation": req.ActivationID})
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
