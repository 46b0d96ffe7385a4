package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoleConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "eddy.json")
	err := os.WriteFile(file, []byte(`{
		"etcd": ["http://e1:2379", "http://e2:2379"],
		"kafka": "file-kafka:9092",
		"postgres": "postgres://file/eddy",
		"lease-ttl": "4s",
		"invoker-memory": 512,
		"id": "from-file"
	}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EDDY_KAFKA": "env-kafka:9092", "EDDY_ID": "from-env"}
	c, err := parseRoleConfig("invoker", []string{"--config", file, "--id", "from-flag"}, io.Discard, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.id != "from-flag" || c.kafka != "env-kafka:9092" || c.etcd != "http://e1:2379,http://e2:2379" ||
		c.postgres != "postgres://file/eddy" || c.leaseTTL != 4*time.Second || c.invokerMemory != 512 {
		t.Fatalf("config = %+v", c)
	}
	if got := splitList(c.etcd); len(got) != 2 || got[1] != "http://e2:2379" {
		t.Fatalf("splitList = %q", got)
	}
	if !strings.HasSuffix(c.dataDir, "invoker-from-flag") {
		t.Fatalf("data dir %q", c.dataDir)
	}
}

func TestRoleConfigErrors(t *testing.T) {
	noEnv := func(string) string { return "" }
	_, err := parseRoleConfig("scheduler", nil, io.Discard, noEnv)
	if err == nil || !strings.Contains(err.Error(), "--etcd (or EDDY_ETCD)") || !strings.Contains(err.Error(), "--id") {
		t.Fatalf("missing settings: %v", err)
	}
	// A controller needs no id.
	c, err := parseRoleConfig("controller", []string{"--etcd", "e", "--kafka", "k", "--postgres", "postgres://db/eddy", "--port", "4000"}, io.Discard, noEnv)
	if err != nil || !strings.HasSuffix(c.id, "-4000") {
		t.Fatalf("controller = %+v, %v", c, err)
	}
	if _, err := parseRoleConfig("controller", []string{"--etcd", "e", "--kafka", "k", "--postgres", "/var/lib/eddy.db"}, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), "SQLite") {
		t.Fatalf("a SQLite path: %v", err)
	}
	file := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(file, []byte(`{"lease-tt": "5s"}`), 0o644)
	if _, err := parseRoleConfig("scheduler", []string{"--config", file}, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), `unknown setting "lease-tt"`) {
		t.Fatalf("typo in file: %v", err)
	}
	if _, err := parseRoleConfig("scheduler", []string{"--lease-ttl", "x"}, io.Discard, noEnv); err == nil {
		t.Fatal("bad duration accepted")
	}
	env := map[string]string{"EDDY_LEASE_TTL": "soon"}
	if _, err := parseRoleConfig("scheduler", nil, io.Discard, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "EDDY_LEASE_TTL") {
		t.Fatalf("bad env value: %v", err)
	}
}
