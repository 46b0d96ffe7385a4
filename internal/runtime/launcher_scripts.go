package runtime

import (
	_ "embed"
	"os"
	"path/filepath"
)

//go:embed launcher.php
var phpLauncher []byte

// phpLauncherT runs PHP as OpenWhisk's PHP runtime does: the source (or
// index.php at the top of a zip, with its Composer dependencies under
// vendor/, loaded through vendor/autoload.php) defines
// function main(array $args): array, or the function init's "main" names.
// The embedded launcher.php runs it with $EDDY_PHP (default php); the
// child always acknowledges start-up.
type phpLauncherT struct{}

// msgPHPZip is OpenWhisk's PHP runtime's complaint about a zip without
// index.php.
const msgPHPZip = "Zip file does not include index.php"

func (phpLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	isZip, err := actionFiles(dir, req, "index.php", 0o644)
	if err != nil {
		return nil, err
	}
	if isZip {
		if _, err := os.Stat(filepath.Join(dir, "index.php")); err != nil {
			return nil, &initError{status: 502, msg: msgPHPZip}
		}
	}
	lp := filepath.Join(workDir, "launcher.php")
	if err := os.WriteFile(lp, phpLauncher, 0o644); err != nil {
		return nil, err
	}
	return &command{
		path:    valueOr(env("EDDY_PHP"), "php"),
		args:    []string{"-d", "display_errors=stderr", "-d", "log_errors=0", "-d", "memory_limit=-1", "-d", "max_execution_time=0", "-f", lp, "--", dir, req.Main},
		dir:     dir,
		waitAck: true,
	}, nil
}

//go:embed launcher.rb
var rubyLauncher []byte

// rubyLauncherT runs Ruby as OpenWhisk's Ruby runtime does: the source
// (or main.rb at the top of a zip, with gems vendored under vendor/bundle)
// defines def main(args) returning a Hash, or the method init's "main"
// names. The embedded launcher.rb runs it with $EDDY_RUBY (default ruby);
// the child always acknowledges start-up.
type rubyLauncherT struct{}

// msgRubyZip is the complaint about a zip without main.rb.
const msgRubyZip = "Zip file does not include main.rb"

func (rubyLauncherT) prepare(workDir string, req *initValue, env func(string) string) (*command, error) {
	dir := filepath.Join(workDir, "action")
	isZip, err := actionFiles(dir, req, "main.rb", 0o644)
	if err != nil {
		return nil, err
	}
	if isZip {
		if _, err := os.Stat(filepath.Join(dir, "main.rb")); err != nil {
			return nil, &initError{status: 502, msg: msgRubyZip}
		}
	}
	lp := filepath.Join(workDir, "launcher.rb")
	if err := os.WriteFile(lp, rubyLauncher, 0o644); err != nil {
		return nil, err
	}
	return &command{
		path:    valueOr(env("EDDY_RUBY"), "ruby"),
		args:    []string{lp, dir, req.Main},
		dir:     dir,
		waitAck: true,
	}, nil
}
