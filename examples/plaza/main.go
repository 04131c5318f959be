// Command plaza publishes, subscribes and reads history on a Plaza server
// from a shell.
//
//	plaza pub ROOM TOPIC [JSON|-]      publish one message, or one per line of stdin
//	plaza sub ROOM TOPIC|PATTERN       print each message as it arrives, until Ctrl-C
//	plaza history ROOM TOPIC           print a page of history, oldest first
//
// The server and the credential come from -url and -token, or from
// PLAZA_URL and PLAZA_TOKEN; the URL defaults to ws://127.0.0.1:8080, the
// address of go run ./examples/server (http, https, ws and wss URLs all
// work). A token is a key, or "<key>:<name>" to choose the client id, as
// the example server takes them. Flags may come before or after the
// command and its arguments.
//
// sub prints one line per message: its time, its sender and its payload
// (plaza sub --json prints each message as the server's JSON instead, one
// per line). It reconnects by itself when the connection drops and, for a
// topic, fills the gap from history, so that nothing is missed or printed
// twice; --history N prints the last N messages of the topic first. pub
// prints the id of each message it published (--json: the whole message).
// history takes --limit, --before ID or --after ID, and --from ID (repeat
// it for more senders); it says on stderr how to read the next page.
//
// Exit codes: 0 done (sub: stopped with Ctrl-C or SIGTERM), 1 the server
// refused or could not be reached, 2 a wrong command, flag, argument or
// payload, 130 interrupted before done (pub, history).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
	"github.com/plazahq/plaza/transport/network"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// defaultURL is the address of go run ./examples/server.
const defaultURL = "ws://127.0.0.1:8080"

// connectTimeout bounds the first connection and each request.
const connectTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usageText = `Usage:
  plaza [-url URL] [-token TOKEN] pub ROOM TOPIC [JSON|-] [--to ID]... [--no-persist] [--json]
  plaza [-url URL] [-token TOKEN] sub ROOM TOPIC|PATTERN [--history N] [--json]
  plaza [-url URL] [-token TOKEN] history ROOM TOPIC [--limit N] [--before ID|--after ID] [--from ID]... [--json]

  -url      the server (PLAZA_URL; default ws://127.0.0.1:8080)
  -token    a key, or KEY:NAME to choose the client id (PLAZA_TOKEN)

pub sends JSON: the argument, or each line of stdin with - or no argument.
sub prints "time from payload" per message until Ctrl-C; patterns are globs (user:*).
`

// options are the flags of every command.
type options struct {
	url, token string
	json       bool
	// pub
	to        multi
	noPersist bool
	// sub
	history int
	// history
	limit         int
	before, after string
	from          multi
}

// multi is a flag that may be repeated.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// parse reads the flags of cmd, wherever they stand among its arguments,
// and returns the arguments.
func parse(cmd string, args []string, o *options) ([]string, error) {
	fs := flag.NewFlagSet("plaza "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.url, "url", o.url, "")
	fs.StringVar(&o.token, "token", o.token, "")
	fs.BoolVar(&o.json, "json", false, "")
	switch cmd {
	case "pub":
		fs.Var(&o.to, "to", "")
		fs.BoolVar(&o.noPersist, "no-persist", false, "")
	case "sub":
		fs.IntVar(&o.history, "history", 0, "")
	case "history":
		fs.IntVar(&o.limit, "limit", -1, "") // -1: not given, the server's default
		fs.StringVar(&o.before, "before", "", "")
		fs.StringVar(&o.after, "after", "", "")
		fs.Var(&o.from, "from", "")
	}
	var rest []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, usagef("%s: %v", cmd, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := options{url: getenv("PLAZA_URL"), token: getenv("PLAZA_TOKEN")}
	if o.url == "" {
		o.url = defaultURL
	}
	// Flags before the command.
	global := flag.NewFlagSet("plaza", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	global.StringVar(&o.url, "url", o.url, "")
	global.StringVar(&o.token, "token", o.token, "")
	err := global.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	if err != nil {
		err = usagef("%v", err)
	} else if global.NArg() == 0 {
		err = usagef("no command: pub, sub or history")
	}
	if err == nil {
		cmd := global.Arg(0)
		var rest []string
		if rest, err = parse(cmd, global.Args()[1:], &o); err == nil {
			err = dispatch(ctx, cmd, rest, &o, stdin, stdout, stderr)
		}
	}
	var uerr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usageText)
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "plaza: %v\n(plaza -h shows the usage)\n", err)
		return exitUsage
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "plaza: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(stderr, "plaza:", err)
	return exitFailed
}

func dispatch(ctx context.Context, cmd string, args []string, o *options, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "pub":
		if len(args) < 2 || len(args) > 3 {
			return usagef("pub takes ROOM TOPIC [JSON|-]")
		}
		return pub(ctx, o, args[0], args[1], args[2:], stdin, stdout)
	case "sub":
		if len(args) != 2 {
			return usagef("sub takes ROOM TOPIC|PATTERN")
		}
		if o.history < 0 || o.history > pubsub.MaxHistoryLimit {
			return usagef("--history %d: want 0 to %d", o.history, pubsub.MaxHistoryLimit)
		}
		if o.history > 0 && topic.IsPattern(args[1]) {
			return usagef("--history needs a topic, not the pattern %q", args[1])
		}
		return sub(ctx, o, args[0], args[1], stdout, stderr)
	case "history":
		if len(args) != 2 {
			return usagef("history takes ROOM TOPIC")
		}
		return history(ctx, o, args[0], args[1], stdout, stderr)
	}
	return usagef("unknown command %q: pub, sub or history", cmd)
}

// join connects to room, giving the first connection connectTimeout.
func join(ctx context.Context, o *options, room string, opts pubsub.JoinOptions) (*pubsub.Room, error) {
	t, err := network.NewClient(o.url, nil)
	if err != nil {
		return nil, usagef("-url %q: %v", o.url, err)
	}
	opts.Token = o.token
	jctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	r, err := pubsub.Join(jctx, t, room, &opts)
	if err != nil {
		return nil, fmt.Errorf("joining %s at %s: %w", room, o.url, err)
	}
	return r, nil
}

// leave leaves r, within a bound of its own: ctx may be over.
func leave(r *pubsub.Room) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	_ = r.Leave(ctx)
}

// nextOrDone calls next on a goroutine of its own and returns what it
// returns, or ctx's error when ctx ends first: a read of stdin cannot be
// cancelled, and Ctrl-C must stop a pub that waits for the next line. The
// goroutine of a cancelled read ends with the process.
func nextOrDone(ctx context.Context, next func() (json.RawMessage, bool, error)) (json.RawMessage, bool, error) {
	type result struct {
		p   json.RawMessage
		ok  bool
		err error
	}
	c := make(chan result, 1)
	go func() {
		p, ok, err := next()
		c <- result{p, ok, err}
	}()
	select {
	case r := <-c:
		return r.p, r.ok, r.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// payloads returns the payloads to publish: the argument, or stdin's lines.
func payloads(args []string, stdin io.Reader) (func() (json.RawMessage, bool, error), error) {
	if len(args) == 1 && args[0] != "-" {
		p := json.RawMessage(args[0])
		if !json.Valid(p) {
			return nil, usagef(`the payload %q is not JSON (a string needs quotes: '"text"')`, clip(args[0]))
		}
		done := false
		return func() (json.RawMessage, bool, error) {
			if done {
				return nil, false, nil
			}
			done = true
			return p, true, nil
		}, nil
	}
	lines := bufio.NewScanner(stdin)
	lines.Buffer(make([]byte, 64<<10), pubsub.MaxPayloadBytes*8)
	n := 0
	return func() (json.RawMessage, bool, error) {
		for lines.Scan() {
			n++
			line := strings.TrimSpace(lines.Text())
			if line == "" {
				continue
			}
			if !json.Valid([]byte(line)) {
				return nil, false, usagef("line %d of stdin is not JSON: %q", n, clip(line))
			}
			return json.RawMessage(line), true, nil
		}
		return nil, false, lines.Err()
	}, nil
}

func pub(ctx context.Context, o *options, room, topicName string, args []string, stdin io.Reader, stdout io.Writer) error {
	next, err := payloads(args, stdin)
	if err != nil {
		return err
	}
	r, err := join(ctx, o, room, pubsub.JoinOptions{})
	if err != nil {
		return err
	}
	defer leave(r)
	var opts []pubsub.PublishOption
	if len(o.to) > 0 {
		opts = append(opts, pubsub.To(o.to...))
	}
	if o.noPersist {
		opts = append(opts, pubsub.Persist(false))
	}
	for {
		p, ok, err := nextOrDone(ctx, next)
		if err != nil || !ok {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		m, err := r.Publish(pctx, topicName, p, opts...)
		cancel()
		if err != nil {
			return err
		}
		if o.json {
			b, _ := json.Marshal(m)
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintln(stdout, m.ID)
		}
	}
}

// printer writes messages to w, one line each.
type printer struct {
	w    io.Writer
	json bool
}

func (p printer) print(m *pubsub.Message) {
	if p.json {
		b, _ := json.Marshal(m)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	fmt.Fprintf(p.w, "%s %s %s\n", m.Timestamp.Local().Format("2006-01-02 15:04:05.000"), m.From, m.Payload)
}

func sub(ctx context.Context, o *options, room, name string, stdout, stderr io.Writer) error {
	r, err := join(ctx, o, room, pubsub.JoinOptions{
		GapFill: true,
		OnError: func(err error) { fmt.Fprintln(stderr, "plaza:", err) },
	})
	if err != nil {
		return err
	}
	defer leave(r)
	// Handlers run on the Room's goroutine; printing happens here, so that
	// the history printed first and the live messages keep their order.
	live := make(chan pubsub.Message, 4096)
	sctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := r.Subscribe(sctx, name, func(m pubsub.Message) { live <- m }); err != nil {
		return fmt.Errorf("subscribing to %s: %w", name, err)
	}
	out := printer{w: stdout, json: o.json}
	var last pubsub.ID
	if o.history > 0 {
		page, err := r.GetHistory(sctx, name, pubsub.Limit(o.history))
		if err != nil {
			return fmt.Errorf("history of %s: %w", name, err)
		}
		for i := range page.Messages {
			out.print(&page.Messages[i])
			last = page.Messages[i].ID
		}
	}
	fmt.Fprintf(stderr, "plaza: subscribed to %s in %s at %s; Ctrl-C stops\n", name, room, o.url)
	for {
		select {
		case m := <-live:
			if m.ID > last || !m.Persisted {
				out.print(&m)
			}
		case <-ctx.Done():
			return nil // Ctrl-C: the way to stop
		}
	}
}

func history(ctx context.Context, o *options, room, name string, stdout, stderr io.Writer) error {
	var opts []pubsub.HistoryOption
	if o.limit != -1 {
		opts = append(opts, pubsub.Limit(o.limit))
	}
	if o.before != "" && o.after != "" {
		return usagef("--before and --after go one at a time")
	}
	for _, f := range []struct {
		name, value string
		opt         func(pubsub.ID) pubsub.HistoryOption
	}{{"before", o.before, pubsub.Before}, {"after", o.after, pubsub.After}} {
		if f.value == "" {
			continue
		}
		id, err := pubsub.ParseID(f.value)
		if err != nil {
			return usagef("--%s %q is not a message id", f.name, clip(f.value))
		}
		opts = append(opts, f.opt(id))
	}
	if len(o.from) > 0 {
		opts = append(opts, pubsub.From(o.from...))
	}
	r, err := join(ctx, o, room, pubsub.JoinOptions{})
	if err != nil {
		return err
	}
	defer leave(r)
	hctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	page, err := r.GetHistory(hctx, name, opts...)
	var perr *pubsub.Error
	if errors.As(err, &perr) && (perr.Code == pubsub.CodeInvalidLimit || perr.Code == pubsub.CodeInvalidHistoryOpts) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	out := printer{w: stdout, json: o.json}
	for i := range page.Messages {
		out.print(&page.Messages[i])
	}
	if page.HasMore && len(page.Messages) > 0 {
		next := "--before " + page.Messages[0].ID.String()
		if o.after != "" {
			next = "--after " + page.Messages[len(page.Messages)-1].ID.String()
		}
		fmt.Fprintf(stderr, "plaza: more with %s\n", next)
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}
