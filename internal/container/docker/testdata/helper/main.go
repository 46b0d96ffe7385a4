// Command helper is a tiny static runtime-protocol server for the docker
// backend's tests, run FROM scratch. POST /init answers {"ok":true}; POST
// /run acts on value.mode:
//
//	echo    logs one line per stream and returns the value
//	chatty  logs value.lines numbered lines per stream and one line of
//	        value.long bytes on stdout, then returns
//	alloc   allocates and touches value.mb MB, then returns (or is OOM-killed)
//
// Both answers end with the sentinel on stdout and stderr. Environment:
// HELPER_EXIT=N exits with code N at once (after a line on stderr);
// HELPER_DELAY=D waits D before listening.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

var hold [][]byte

func main() {
	if code := os.Getenv("HELPER_EXIT"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintln(os.Stderr, "helper: boom, exiting with", n)
		os.Exit(n)
	}
	if d, err := time.ParseDuration(os.Getenv("HELPER_DELAY")); err == nil {
		time.Sleep(d)
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	end := func() {
		fmt.Fprintln(out, sentinel)
		fmt.Fprintln(errw, sentinel)
		out.Flush()
		errw.Flush()
	}
	http.HandleFunc("/init", func(w http.ResponseWriter, r *http.Request) {
		end()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	http.HandleFunc("/run", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Value struct {
				Mode  string `json:"mode"`
				Lines int    `json:"lines"`
				Long  int    `json:"long"`
				MB    int    `json:"mb"`
			} `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v := req.Value
		switch v.Mode {
		case "echo":
			fmt.Fprintln(out, "hello stdout", os.Getenv("GREETING"))
			fmt.Fprintln(errw, "hello stderr")
		case "chatty":
			for i := 0; i < v.Lines; i++ {
				fmt.Fprintf(out, "out %d\n", i)
				fmt.Fprintf(errw, "err %d\n", i)
			}
			if v.Long > 0 {
				fmt.Fprintln(out, strings.Repeat("x", v.Long))
			}
		case "alloc":
			for i := 0; i < v.MB; i++ {
				b := make([]byte, 1<<20)
				for j := range b {
					b[j] = byte(j)
				}
				hold = append(hold, b)
			}
		}
		end()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"mode": v.Mode, "env": os.Getenv("GREETING")})
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
