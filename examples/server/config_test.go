package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// env is a fake environment.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A setting takes its value from the flag, else the environment, else the
// file, else its default.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "plaza.toml", `
addr = "127.0.0.1:7000"
publish-key = "pk-file"
subscribe-key = "sk-file"
publish-per-minute = 30
memory = true
origins = ["localhost:*", "example.test"]
shutdown-timeout = "3s"
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*config)
	}{
		{name: "defaults", want: func(c *config) {}},
		{name: "file", args: []string{"-config", file}, want: func(c *config) {
			c.addr, c.publishKey, c.subscribeKey, c.publishPerMinute, c.memory = "127.0.0.1:7000", "pk-file", "sk-file", 30, true
			c.origins, c.shutdownTimeout = []string{"localhost:*", "example.test"}, 3*time.Second
		}},
		{name: "file named by the environment", env: map[string]string{"PLAZA_CONFIG": file}, want: func(c *config) {
			c.addr, c.publishKey, c.subscribeKey, c.publishPerMinute, c.memory = "127.0.0.1:7000", "pk-file", "sk-file", 30, true
			c.origins, c.shutdownTimeout = []string{"localhost:*", "example.test"}, 3*time.Second
		}},
		{name: "environment over file", args: []string{"-config", file}, env: map[string]string{
			"PLAZA_PUBLISH_KEY": "pk-env", "PLAZA_PUBLISH_PER_MINUTE": "60", "PLAZA_MEMORY": "false", "PLAZA_ORIGINS": "a.test",
		}, want: func(c *config) {
			c.addr, c.publishKey, c.subscribeKey, c.publishPerMinute, c.memory = "127.0.0.1:7000", "pk-env", "sk-file", 60, false
			c.origins, c.shutdownTimeout = []string{"a.test"}, 3*time.Second
		}},
		{name: "flag over environment and file", args: []string{"-config", file, "-publish-key", "pk-flag", "-memory"}, env: map[string]string{
			"PLAZA_PUBLISH_KEY": "pk-env", "PLAZA_MEMORY": "false", "PLAZA_LOG_FORMAT": "json",
		}, want: func(c *config) {
			c.addr, c.publishKey, c.subscribeKey, c.publishPerMinute, c.memory = "127.0.0.1:7000", "pk-flag", "sk-file", 30, true
			c.origins, c.shutdownTimeout, c.logFormat = []string{"localhost:*", "example.test"}, 3*time.Second, "json"
		}},
		{name: "an empty variable is unset", env: map[string]string{"PLAZA_ADDR": ""}, want: func(c *config) {}},
		{name: "origins are trimmed, as a list is written by hand", env: map[string]string{"PLAZA_ORIGINS": "a.test, b.test ,"}, want: func(c *config) {
			c.origins = []string{"a.test", "b.test"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := config{
				addr: "127.0.0.1:8080", publishKey: defaultPublishKey, subscribeKey: defaultSubscribeKey,
				data: "plaza-data", logFormat: "text", logLevel: "info", shutdownTimeout: 10 * time.Second,
			}
			tt.want(&want)
			got, err := loadConfig(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("loadConfig(%q) = %v", tt.args, err)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("loadConfig(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// An invalid setting stops the server before it starts, with a message that
// names the setting and where its value came from.
func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // the config file, when set
		want string // in the error
	}{
		{name: "flag", args: []string{"-publish-per-minute", "lots"}, want: "publish-per-minute"},
		{name: "unknown flag", args: []string{"-publish-kee", "x"}, want: "publish-kee"},
		{name: "argument", args: []string{"serve"}, want: `unexpected argument "serve"`},
		{name: "environment", env: map[string]string{"PLAZA_PUBLISH_PER_MINUTE": "lots"}, want: "PLAZA_PUBLISH_PER_MINUTE"},
		{name: "environment bool", env: map[string]string{"PLAZA_MEMORY": "maybe"}, want: "PLAZA_MEMORY"},
		{name: "file value", file: `publish-per-minute = "lots"`, want: "invalid value for publish-per-minute"},
		{name: "file type", file: `memory = { on = true }`, want: "invalid value for memory"},
		{name: "file key", file: `publish_key = "pk"`, want: `unknown setting "publish_key"`},
		{name: "file syntax", file: `addr = `, want: "config file"},
		{name: "missing file", args: []string{"-config", "/nonexistent/plaza.toml"}, want: "/nonexistent/plaza.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(args, "-config", writeFile(t, "plaza.toml", tt.file))
			}
			_, err := loadConfig(args, env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadConfig(%q, %v) = %v, want an error naming %q", args, tt.env, err, tt.want)
			}
		})
	}
}

// -h lists every setting with its environment variable.
func TestConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := loadConfig([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("loadConfig(-h) = %v, want flag.ErrHelp", err)
	}
	var cfg config
	flags(&cfg).VisitAll(func(f *flag.Flag) {
		if want := "-" + f.Name + " (" + envName(f.Name) + ")"; !strings.Contains(out.String(), want) {
			t.Errorf("-h does not list %q:\n%s", want, out.String())
		}
	})
}

// FuzzConfigFile: whatever the config file holds, loadConfig returns a
// config or an error that names the file, and never panics.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		`addr = "127.0.0.1:7000"`,
		"publish-key = \"pk\"\nsubscribe-key = \"sk\"\nmemory = true\npublish-per-minute = 5",
		`origins = ["a.test", "b.test"]`,
		`origins = [1, 2]`,
		`shutdown-timeout = "3s"`,
		`memory = 1.5`,
		`[table]`,
		`addr = { x = 1 }`,
		"\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(t.TempDir(), "plaza.toml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig([]string{"-config", path}, env(nil), io.Discard)
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("loadConfig(file %q) = %v, want an error naming the file", text, err)
		}
	})
}
