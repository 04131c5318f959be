package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Default keys, for trying the server on this machine.
const (
	defaultPublishKey   = "pk-dev"
	defaultSubscribeKey = "sk-dev"
)

// config is what the settings set. Each setting is a flag, an environment
// variable and a key of the config file (see flags); run checks the values.
type config struct {
	addr             string
	publishKey       string
	subscribeKey     string
	data             string   // folder for durable history
	memory           bool     // keep history in memory instead
	redis            string   // Redis URL: one node of several sharing it
	publishPerMinute int      // HTTP publishes per room per rolling minute; 0: no cap
	origins          []string // browser origins allowed besides the server's own
	tlsCert, tlsKey  string   // PEM files: serve HTTPS and WSS
	metricsAddr      string   // separate listener for /metrics, /healthz, /readyz; "": the main one
	logFormat        string   // "text" or "json"
	logLevel         string   // "debug", "info", "warn" or "error"
	shutdownTimeout  time.Duration
}

// envPrefix starts the environment variable of every setting: -publish-key
// is PLAZA_PUBLISH_KEY.
const envPrefix = "PLAZA_"

// flags defines every setting on a new FlagSet that writes to cfg, with its
// default and its help. It is the one list of settings: a new one is a new
// line here (and its check in run), and it is at once a flag, an
// environment variable and a key of the config file.
func flags(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.String("config", "", "optional TOML file of settings, keys named as the flags (publish-key = \"…\")")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.publishKey, "publish-key", defaultPublishKey, "key that may publish, subscribe, read history and create client sockets")
	fs.StringVar(&cfg.subscribeKey, "subscribe-key", defaultSubscribeKey, "key that may subscribe, read history and create client sockets, but not publish")
	fs.StringVar(&cfg.data, "data", "plaza-data", "folder for durable history (history.db inside it)")
	fs.BoolVar(&cfg.memory, "memory", false, "keep history in memory only: it is lost when the server stops")
	fs.StringVar(&cfg.redis, "redis", "", "Redis URL (redis://host:port): run as one node of several sharing it, with history, deduplication, caps and client sockets in Redis instead of -data")
	fs.IntVar(&cfg.publishPerMinute, "publish-per-minute", 0, "cap on HTTP publishes per room over a rolling minute (0: no cap)")
	fs.Func("origins", `comma-separated browser origins allowed besides the server's own, as host patterns ("localhost:*")`, func(s string) error {
		cfg.origins = nil
		for _, o := range strings.Split(s, ",") {
			// No pattern holds a space; "a.test, b.test" means two.
			if o = strings.TrimSpace(o); o != "" {
				cfg.origins = append(cfg.origins, o)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS and WSS (with -tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "separate plain-HTTP address for /metrics (it serves /healthz and /readyz too); empty: /metrics on the main address")
	fs.StringVar(&cfg.logFormat, "log-format", "text", `log format on stderr: "text" or "json"`)
	fs.StringVar(&cfg.logLevel, "log-level", "info", `least severe log level: "debug", "info", "warn" or "error"`)
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for connections and requests to end")
	return fs
}

// envName is the environment variable of the setting name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// loadConfig reads the settings: each takes its value from the command line
// (args, without the program name), else from its environment variable
// (getenv), else from the config file, else its default. An invalid value,
// an unknown key in the file or an unreadable file is an error that names
// the setting and where its value came from. help receives the usage on
// -h; loadConfig then returns flag.ErrHelp.
func loadConfig(args []string, getenv func(string) string, help io.Writer) (config, error) {
	// First pass: only to find the config file, which the command line or
	// the environment names.
	var scratch config
	pre := flags(&scratch)
	pre.SetOutput(help)
	pre.Usage = func() { usage(pre) }
	if err := pre.Parse(args); err != nil {
		return config{}, err
	}
	if pre.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: every setting is a flag (-h lists them)", pre.Arg(0))
	}
	path := pre.Lookup("config").Value.String()
	if path == "" {
		path = getenv(envName("config"))
	}

	var cfg config
	fs := flags(&cfg)
	fs.SetOutput(io.Discard) // the first pass reported any problem
	if path != "" {
		if err := applyFile(fs, path); err != nil {
			return config{}, err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := lookupEnv(getenv, envName(f.Name)); ok && err == nil && f.Name != "config" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: invalid value for -%s: %v", envName(f.Name), v, f.Name, serr)
			}
		}
	})
	if err != nil {
		return config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// lookupEnv reports the value of an environment variable that is set and
// not empty: an empty one counts as unset.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// applyFile sets the flags of fs that the TOML file at path names.
func applyFile(fs *flag.FlagSet, path string) error {
	var values map[string]any
	if _, err := toml.DecodeFile(path, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil || k == "config" {
			return fmt.Errorf("config file %s: unknown setting %q (the settings are the flags of -h, without the dash)", path, k)
		}
		v, err := fileValue(values[k])
		if err == nil {
			err = fs.Set(k, v)
		}
		if err != nil {
			return fmt.Errorf("config file %s: invalid value for %s: %v", path, k, err)
		}
	}
	return nil
}

// fileValue turns a TOML value into the text its flag parses: lists (of
// origins) become comma-separated.
func fileValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, int64, float64:
		return fmt.Sprint(v), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", errors.New("a list must hold strings")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("%T is not a string, number, boolean or list of strings", v)
}

// usage prints the settings with their environment variables.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: server [flags]\n\nEvery flag is also an environment variable (-publish-key: %s) and a key of the\n-config file; a flag beats the environment, which beats the file.\n\n", envName("publish-key"))
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  -%s (%s)\n    \t%s", f.Name, envName(f.Name), f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
