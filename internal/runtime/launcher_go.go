package runtime

import (
	"bytes"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed launcher_go.tmpl
var goLauncherSource string

// GoLauncherSource is the generated main__.go that runs an action's Main
// (the eddy/action-go image compiles it once when it is built, to warm its
// build cache).
func GoLauncherSource() []byte { return []byte(goLauncherSource) }

// goLauncherT runs Go actions as OpenWhisk's Go runtime does
// (openwhisk-runtime-go, docs/ACTION.md and DEPLOY.md):
//
//   - an ELF executable, as the code or as "exec" at the top of a zip, is
//     precompiled: it runs as it is and must speak the actionloop protocol
//     itself (as the native launcher's executables);
//   - anything else is source of package main: a single file, or a zip of
//     a module's files (go.mod optional; a top-level "exec" that is not a
//     binary is source too). The entry point is the function named by
//     init's "main" capitalized (default Main) with the signature
//     func Main(map[string]interface{}) map[string]interface{} (slices
//     too); a generated main__.go runs it in the actionloop protocol,
//     unless the source has its own func main(). /init compiles it with
//     $EDDY_GO (default go), GOPROXY=off and CGO_ENABLED=0: dependencies
//     come from the zip's vendor directory (go mod vendor), as the
//     container reaches no module proxy. The build cache is $GOCACHE (the
//     eddy/action-go image keeps one warmed at build time), else one in the
//     work directory.
//
// A compile error fails /init with 502 and the compiler's output as the
// error, as the upstream proxy answers without OW_LOG_INIT_ERROR (the
// output also goes to stderr, the activation's logs).
type goLauncherT struct{}

// goMainFunc matches a source that has its own func main in package main.
var goMainFunc = regexp.MustCompile(`(?s)package\s+main\W.*func\s+main\s*\(\s*\)`)

// goIdent matches an identifier the main name may be.
var goIdent = regexp.MustCompile(`^[\p{L}_][\p{L}\p{Nd}_]*$`)

func (goLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	if _, err := actionFiles(dir, req, "exec", 0o755); err != nil {
		return nil, err
	}
	exe := filepath.Join(dir, "exec")
	if isELF(exe) {
		if err := os.Chmod(exe, 0o755); err != nil {
			return nil, err
		}
		return ackPerEnv(&command{path: exe, dir: dir}, env), nil
	}
	fn, err := goMainName(req.Main)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(exe); err == nil {
		if err := os.Rename(exe, filepath.Join(dir, "exec__.go")); err != nil {
			return nil, err
		}
	}
	ownMain, err := hasGoMain(dir)
	if err != nil {
		return nil, err
	}
	if !ownMain {
		src := strings.Replace(goLauncherSource, "reflect.ValueOf(Main)", "reflect.ValueOf("+fn+")", 1)
		if err := os.WriteFile(filepath.Join(dir, "main__.go"), []byte(src), 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module exec\n"), 0o644); err != nil {
			return nil, err
		}
	}
	bin := filepath.Join(workDir, "bin", "exec")
	if err := goBuild(dir, bin, workDir, env); err != nil {
		return nil, err
	}
	if ownMain {
		return ackPerEnv(&command{path: bin, dir: dir}, env), nil
	}
	return &command{path: bin, dir: dir, waitAck: true}, nil
}

// ackPerEnv applies the Go proxy's rule to an executable of the user's:
// wait for its acknowledgement only when OW_WAIT_FOR_ACK is set (the
// eddy/action-go image sets it, as upstream's Go image does), and tell it
// so with __OW_WAIT_FOR_ACK=1.
func ackPerEnv(c *command, env func(string) string) *command {
	if env("OW_WAIT_FOR_ACK") != "" {
		c.waitAck = true
		c.env = append(c.env, "__OW_WAIT_FOR_ACK=1")
	}
	return c
}

// goMainName is the Go function init's main names: capitalized, as
// upstream does ("main" is Main, "hello" Hello).
func goMainName(main string) (string, error) {
	if main == "" {
		main = "main"
	}
	if !goIdent.MatchString(main) {
		return "", badRequest("The main function name %q is not a Go identifier.", main)
	}
	r, n := utf8.DecodeRuneInString(main)
	return string(unicode.ToUpper(r)) + main[n:], nil
}

// hasGoMain reports whether a .go file at the top of dir declares its own
// func main in package main.
func hasGoMain(dir string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		if goMainFunc.Match(b) {
			return true, nil
		}
	}
	return false, nil
}

// isELF reports whether path is an ELF executable.
func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := f.Read(magic)
	return n == 4 && bytes.Equal(magic, []byte("\x7fELF"))
}

// goBuild compiles the module in dir into bin.
func goBuild(dir, bin, workDir string, env func(string) string) error {
	goBin := env("EDDY_GO")
	if goBin == "" {
		goBin = "go"
	}
	mod := "-mod=mod"
	if _, err := os.Stat(filepath.Join(dir, "vendor", "modules.txt")); err == nil {
		mod = "-mod=vendor"
	}
	cmd := exec.Command(goBin, "build", mod, "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + valueOr(env("PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		"HOME=" + valueOr(env("HOME"), workDir),
		"GOPROXY=off", "GOSUMDB=off", "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GO111MODULE=on",
	}
	// The build cache: $GOCACHE, else the go tool's default under $HOME
	// or $XDG_CACHE_HOME, else one in the work directory.
	switch {
	case env("GOCACHE") != "":
		cmd.Env = append(cmd.Env, "GOCACHE="+env("GOCACHE"))
	case env("XDG_CACHE_HOME") != "":
		cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+env("XDG_CACHE_HOME"))
	case env("HOME") == "":
		cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(workDir, "gocache"))
	}
	if p := env("GOPATH"); p != "" {
		cmd.Env = append(cmd.Env, "GOPATH="+p)
	} else if env("HOME") == "" {
		cmd.Env = append(cmd.Env, "GOPATH="+filepath.Join(workDir, "gopath"))
	}
	if root := env("GOROOT"); root != "" {
		cmd.Env = append(cmd.Env, "GOROOT="+root)
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	text := strings.TrimSpace(string(out))
	if text == "" {
		text = "go build: " + err.Error()
	}
	return &initError{status: 502, msg: text, detail: text}
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
