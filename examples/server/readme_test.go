package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// README.md's table of settings lists every flag with its environment
// variable, and nothing else.
func TestREADMESettings(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "### Configuration\n")
	if !ok {
		t.Fatal("README.md has no ### Configuration section")
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(rest, "\n") {
		if strings.HasPrefix(line, "### ") {
			break
		}
		if strings.HasPrefix(line, "| `-") {
			cells := strings.Split(line, "|")
			rows[strings.TrimSpace(cells[1])+" "+strings.TrimSpace(cells[2])] = true
		}
	}
	var cfg config
	flags(&cfg).VisitAll(func(f *flag.Flag) {
		row := "`-" + f.Name + "` `" + envName(f.Name) + "`"
		if !rows[row] {
			t.Errorf("README.md's settings table has no row for -%s, %s", f.Name, envName(f.Name))
		}
		delete(rows, row)
	})
	for row := range rows {
		t.Errorf("README.md's settings table lists %s, which is no setting", row)
	}
}
