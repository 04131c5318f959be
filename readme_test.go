package plaza_test

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fragmentMarker starts a Go block of README.md that is not a program of
// its own: it continues the complete program above it, at the end of that
// program's main function.
const fragmentMarker = "// Continues the program above."

// quickStart is the README section whose program the test runs, and
// quickStartSays what it must print.
const (
	quickStart     = "Quick start"
	quickStartSays = `bob received {"text":"hello"} from alice`
)

// TestREADME keeps README.md's Go code true: every ```go block is a
// complete program (package main) or a fragment marked with fragmentMarker,
// which is spliced into the program above it. All the programs are vetted
// (which type-checks them) together in one temporary module that uses this
// checkout, and the Quick start is built and run: it must print the
// delivery.
func TestREADME(t *testing.T) {
	md, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := filepath.Abs("README.md")
	if err != nil {
		t.Fatal(err)
	}
	progs, err := readmePrograms(readme, string(md))
	if err != nil {
		t.Fatal(err)
	}
	var quick *readmeProgram
	for _, p := range progs {
		if p.section == quickStart {
			quick = p
		}
	}
	if quick == nil {
		t.Fatalf("README.md has no Go program under %q", "## "+quickStart)
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no go command on PATH to build README.md's programs")
		}
		t.Skip("no go command on PATH to build README.md's programs")
	}
	mod := t.TempDir()
	writeReadmeModule(t, mod, progs)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	goCmd := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = mod
		// Resolve everything from this checkout and the module cache it
		// built with; never from the network.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOPROXY=off", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s on README.md's programs: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Vet type-checks every program; only the one that runs is linked.
	goCmd("vet", "./...")
	bin := filepath.Join(mod, "quick-start")
	goCmd("build", "-o", bin, "./"+quick.dir)

	run := exec.CommandContext(ctx, bin)
	run.Dir = mod
	run.WaitDelay = 5 * time.Second
	out, err := run.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the Quick start (README.md:%d) did not finish within the test's deadline; it printed:\n%s", quick.line, out)
	}
	if err != nil || !bytes.Contains(out, []byte(quickStartSays)) {
		t.Fatalf("the Quick start (README.md:%d) = %v, printing:\n%s\nwant a line %s", quick.line, err, out, quickStartSays)
	}
	t.Logf("the Quick start printed:\n%s", out)
}

// readmeProgram is one complete program of README.md, with the fragments
// that continue it spliced in.
type readmeProgram struct {
	dir     string // its directory in the temporary module
	section string // the heading above it
	line    int    // the line of its opening fence
	src     string
}

// readmePrograms returns the programs of md, the text of the file at path
// readme: each ```go block that is a package main, with each block that
// starts with fragmentMarker spliced into the program before it. Any other
// Go block is an error, so none is left out unnoticed. The sources carry
// //line directives, so that compiler errors point into README.md.
func readmePrograms(readme, md string) ([]*readmeProgram, error) {
	blocks, err := goBlocks(md)
	if err != nil {
		return nil, err
	}
	var progs []*readmeProgram
	for _, b := range blocks {
		first, _, _ := strings.Cut(strings.TrimSpace(b.code), "\n")
		switch {
		case strings.HasPrefix(strings.TrimSpace(first), fragmentMarker):
			if len(progs) == 0 {
				return nil, fmt.Errorf("README.md:%d: the Go block says %q, but no complete program comes before it", b.line, fragmentMarker)
			}
			p := progs[len(progs)-1]
			src, err := spliceIntoMain(readme, p.src, b)
			if err != nil {
				return nil, err
			}
			p.src = src
		case isMainPackage(b.code):
			progs = append(progs, &readmeProgram{
				dir:     fmt.Sprintf("%s-%d", slug(b.section), b.line),
				section: b.section,
				line:    b.line,
				src:     fmt.Sprintf("//line %s:%d\n%s", readme, b.line+1, b.code),
			})
		default:
			return nil, fmt.Errorf("README.md:%d: a Go block must be a complete program (package main, its imports, func main) "+
				"or a fragment of the program above it, starting with the line %q", b.line, fragmentMarker)
		}
	}
	return progs, nil
}

// goBlock is a fenced block of Go code in Markdown.
type goBlock struct {
	line    int    // 1-based line of the opening fence
	section string // the text of the nearest heading above it
	code    string
}

// openFence matches the opening fence of a fenced code block, as CommonMark
// has it: up to three spaces, three or more backticks or tildes, then the
// info string, whose first word is the language.
var openFence = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})\\s*([^\\s`]*)")

// heading matches an ATX heading and captures its text.
var heading = regexp.MustCompile(`^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$`)

// goBlocks returns the fenced code blocks of md whose language is go.
func goBlocks(md string) ([]goBlock, error) {
	var blocks []goBlock
	var section string
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if h := heading.FindStringSubmatch(line); h != nil {
			section = h[1]
			continue
		}
		m := openFence.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		fence, lang := m[1], strings.ToLower(m[2])
		start := i
		var code []string
		closed := false
		for i++; i < len(lines); i++ {
			if t := strings.TrimSpace(lines[i]); strings.HasPrefix(t, fence[:3]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
				closed = true
				break
			}
			code = append(code, lines[i])
		}
		if !closed {
			return nil, fmt.Errorf("README.md:%d: the code block is never closed", start+1)
		}
		if lang == "go" || lang == "golang" {
			blocks = append(blocks, goBlock{line: start + 1, section: section, code: strings.Join(code, "\n") + "\n"})
		}
	}
	return blocks, nil
}

// isMainPackage reports whether src starts, after comments, with package main.
func isMainPackage(src string) bool {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.PackageClauseOnly)
	return err == nil && f.Name.Name == "main"
}

// spliceIntoMain inserts the fragment b at the end of the body of func main
// in src, between //line directives that keep positions in README.md.
func spliceIntoMain(readme, src string, b goBlock) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, 0)
	if err != nil {
		return "", fmt.Errorf("README.md:%d: cannot splice the fragment into the program above: %v", b.line, err)
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil || fd.Name.Name != "main" || fd.Body == nil {
			continue
		}
		end := fset.Position(fd.Body.Rbrace) // in README.md, through the //line directives
		off := fset.File(fd.Body.Rbrace).Offset(fd.Body.Rbrace)
		var sb strings.Builder
		sb.WriteString(src[:off])
		fmt.Fprintf(&sb, "\n//line %s:%d\n%s//line %s:%d\n", readme, b.line+1, b.code, readme, end.Line)
		sb.WriteString(src[off:])
		return sb.String(), nil
	}
	return "", fmt.Errorf("README.md:%d: the program above the fragment has no func main to continue", b.line)
}

// writeReadmeModule writes progs, one main package per directory, into a
// module at dir that requires github.com/plazahq/plaza from this checkout.
func writeReadmeModule(tb testing.TB, dir string, progs []*readmeProgram) {
	tb.Helper()
	root, err := filepath.Abs(".")
	if err != nil {
		tb.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		tb.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(gomod)
	if goLine == nil {
		tb.Fatal("go.mod has no go line")
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		tb.Fatal(err)
	}
	mod := fmt.Sprintf("module plazareadme\n\n%s\n\nrequire github.com/plazahq/plaza v0.0.0\n\nreplace github.com/plazahq/plaza => %s\n", goLine, root)
	files := map[string][]byte{"go.mod": []byte(mod), "go.sum": sum}
	for _, p := range progs {
		files[filepath.Join(p.dir, "main.go")] = []byte(p.src)
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// slug turns a heading into a directory name: "A Go client" → "a-go-client".
func slug(s string) string {
	s = strings.ToLower(s)
	s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "-")
	if s = strings.Trim(s, "-"); s == "" {
		return "program"
	}
	return s
}

// TestReadmePrograms checks how README.md's blocks are told apart: no Go
// block may slip through unbuilt.
func TestReadmePrograms(t *testing.T) {
	const prog = "```go\npackage main\n\nfunc main() {\n\tx := 1\n}\n```\n"
	tests := []struct {
		name    string
		md      string
		progs   int
		wantErr string // empty: no error
	}{
		{"a program", "# Title\n" + prog, 1, ""},
		{"other languages are not Go", "```sh\ngo run .\n```\n```js\nx()\n```\n    indented := 1\n", 0, ""},
		{"Go in capitals, with an info string", "~~~~Go title\npackage main\nfunc main() {}\n~~~~\n", 1, ""},
		{"a marked fragment", prog + "```go\n" + fragmentMarker + "\n_ = x\n```\n", 1, ""},
		{"an unmarked fragment", prog + "```go\n_ = x\n```\n", 0, "README.md:8: a Go block must be"},
		{"a fragment before any program", "```go\n" + fragmentMarker + "\n```\n" + prog, 0, "no complete program comes before it"},
		{"another package", "```go\npackage plaza\n```\n", 0, "README.md:1: a Go block must be"},
		{"a fence never closed", "```go\npackage main\n", 0, "never closed"},
		{"a fence closed by a longer one", "```go\npackage main\nfunc main() {}\n`````\n", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			progs, err := readmePrograms("README.md", tt.md)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("readmePrograms() = %v, want an error containing %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("readmePrograms() = %v", err)
			case len(progs) != tt.progs:
				t.Fatalf("readmePrograms() = %d programs, want %d", len(progs), tt.progs)
			}
		})
	}
	t.Run("a fragment lands at the end of main, positions kept", func(t *testing.T) {
		progs, err := readmePrograms("R.md", prog+"```go\n"+fragmentMarker+"\n_ = x\n```\n")
		if err != nil {
			t.Fatal(err)
		}
		want := "//line R.md:2\npackage main\n\nfunc main() {\n\tx := 1\n\n//line R.md:9\n" + fragmentMarker + "\n_ = x\n//line R.md:6\n}\n"
		if progs[0].src != want {
			t.Errorf("spliced program:\n%s\nwant:\n%s", progs[0].src, want)
		}
	})
}

// FuzzGoBlocks checks that the Markdown splitter never panics and only
// returns blocks that are in the text, in order.
func FuzzGoBlocks(f *testing.F) {
	f.Add("# T\n```go\npackage main\n```\n")
	f.Add("```go\n" + fragmentMarker + "\n```\n~~~golang x\n~~~\n")
	f.Add("   ```go\n```` \n```\n")
	f.Add("```")
	f.Fuzz(func(t *testing.T, md string) {
		blocks, err := goBlocks(md)
		if err != nil {
			return
		}
		last := 0
		for _, b := range blocks {
			if b.line <= last || !strings.Contains(md+"\n", b.code) {
				t.Fatalf("goBlocks(%q): block at line %d (after %d) = %q, not in the text in order", md, b.line, last, b.code)
			}
			last = b.line
		}
		_, _ = readmePrograms("README.md", md)
	})
}
