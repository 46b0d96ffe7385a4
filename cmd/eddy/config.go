package main

// Configuration of the role commands (`eddy controller|scheduler|invoker`):
// every setting is a flag; a flag not given on the command line is taken
// from the environment variable EDDY_<FLAG> (upper case, '-' as '_', e.g.
// EDDY_ETCD, EDDY_KAFKA, EDDY_POSTGRES, EDDY_LEASE_TTL), else from the JSON
// object of the --config file (keys are flag names: {"etcd": [...],
// "lease-ttl": "5s"}), else the flag's default.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// envName is the environment variable of flag name.
func envName(name string) string {
	return "EDDY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseRole parses args into fs, then fills the flags not given from the
// environment and the config file (the value of the flag named "config",
// itself also settable as EDDY_CONFIG).
func parseRole(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	// The environment, for what the command line did not give.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
			given[f.Name] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// The config file, for what neither gave.
	cf := fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	values, err := readConfigFile(path)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if fs.Lookup(name) == nil || name == "config" {
			errs = append(errs, fmt.Errorf("%s: unknown setting %q (settings are the flags of `%s -h`)", path, name, fs.Name()))
			continue
		}
		if given[name] {
			continue
		}
		if err := fs.Set(name, values[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", path, name, err))
		}
	}
	return errors.Join(errs...)
}

// readConfigFile reads a JSON object of settings. Values may be strings,
// numbers, booleans, or arrays of strings (joined with commas, for lists
// such as etcd endpoints and Kafka brokers).
func readConfigFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: want a JSON object of settings: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		var list []string
		var any any
		switch {
		case json.Unmarshal(v, &s) == nil:
			out[k] = s
		case json.Unmarshal(v, &list) == nil:
			out[k] = strings.Join(list, ",")
		case json.Unmarshal(v, &any) == nil:
			switch any.(type) {
			case float64, bool:
				out[k] = strings.TrimSpace(string(v))
			default:
				return nil, fmt.Errorf("config file %s: %q: want a string, number, boolean or list of strings", path, k)
			}
		default:
			return nil, fmt.Errorf("config file %s: %q: bad value", path, k)
		}
	}
	return out, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
