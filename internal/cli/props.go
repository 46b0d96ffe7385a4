package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// props is a .wskprops file: KEY=VALUE lines as wsk writes them. Lines the
// CLI does not understand (unknown keys, comments) are kept as they are.
type props struct {
	lines []string // the file's lines, in order
}

// propsPath is WSK_CONFIG_FILE, else ~/.wskprops.
func (r *runner) propsPath() (string, error) {
	if p := r.env.Getenv("WSK_CONFIG_FILE"); p != "" {
		return p, nil
	}
	if r.env.HomeDir == "" {
		return "", errors.New("no home directory to hold .wskprops; set WSK_CONFIG_FILE")
	}
	return filepath.Join(r.env.HomeDir, ".wskprops"), nil
}

// loadProps reads the properties file; a missing file is empty.
func (r *runner) loadProps() (*props, error) {
	path, err := r.propsPath()
	if err != nil {
		return &props{}, nil // no home and no WSK_CONFIG_FILE: nothing to read
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &props{}, nil
	}
	if err != nil {
		return nil, generalErr("Unable to read the properties file: %v", err)
	}
	return parseProps(string(data)), nil
}

func parseProps(s string) *props {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return &props{}
	}
	return &props{lines: strings.Split(s, "\n")}
}

// find returns the index of key's line, or -1.
func (p *props) find(key string) int {
	for i, l := range p.lines {
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == key {
			return i
		}
	}
	return -1
}

func (p *props) get(key string) string {
	if i := p.find(key); i >= 0 {
		_, v, _ := strings.Cut(p.lines[i], "=")
		return strings.TrimSpace(v)
	}
	return ""
}

func (p *props) set(key, value string) {
	line := key + "=" + value
	if i := p.find(key); i >= 0 {
		p.lines[i] = line
		return
	}
	p.lines = append(p.lines, line)
}

func (p *props) unset(key string) {
	for i := p.find(key); i >= 0; i = p.find(key) {
		p.lines = append(p.lines[:i], p.lines[i+1:]...)
	}
}

func (p *props) String() string {
	if len(p.lines) == 0 {
		return ""
	}
	return strings.Join(p.lines, "\n") + "\n"
}

// saveProps writes the properties file (mode 0600: it holds the key).
func (r *runner) saveProps(p *props) error {
	path, err := r.propsPath()
	if err != nil {
		return generalErr("Unable to write the properties file: %v", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(p.String()), 0o600); err != nil {
		return generalErr("Unable to write the properties file: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return generalErr("Unable to write the properties file %s: %v", path, err)
	}
	return nil
}

// readFile reads a file named on the command line (an action's code, -P, -A).
func readFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("File '%s' is not a valid file or it does not exist", name)
		}
		return nil, fmt.Errorf("Unable to read the file '%s': %v", name, err)
	}
	return data, nil
}
