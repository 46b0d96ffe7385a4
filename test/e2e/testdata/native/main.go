// Command native is a static actionloop executable for the end-to-end
// tests' native actions: it reads one JSON line per activation on stdin and
// writes one JSON line on fd 3. value.mode picks the behaviour: "" greets
// value.name (logging a line), "garbage" answers something that is not
// JSON, "crash" exits mid-run.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	out := os.NewFile(3, "results")
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var msg struct {
			Value struct {
				Name string `json:"name"`
				Mode string `json:"mode"`
			} `json:"value"`
		}
		_ = json.Unmarshal(in.Bytes(), &msg)
		switch msg.Value.Mode {
		case "garbage":
			fmt.Fprintln(out, "this is not json")
		case "crash":
			fmt.Println("about to crash")
			os.Exit(3)
		default:
			fmt.Println("native log", msg.Value.Name)
			b, _ := json.Marshal(map[string]string{"greeting": "Hello " + msg.Value.Name})
			fmt.Fprintln(out, string(b))
		}
	}
}
