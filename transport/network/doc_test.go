package network

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestDocFrames checks the frame examples of the package documentation: each
// request ("→") decodes, and each server frame ("←") is one the Go client
// understands.
func TestDocFrames(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var requests, replies int
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "//"))
		if strings.HasPrefix(line, "→ ") {
			requests++
			frame := strings.TrimPrefix(line, "→ ")
			if _, err := decodeRequest([]byte(frame)); err != nil {
				t.Errorf("documented request %s: %v", frame, err)
			}
		}
		if strings.HasPrefix(line, "← ") {
			replies++
			frame := strings.ReplaceAll(strings.TrimPrefix(line, "← "), "…", "...")
			var f serverFrame
			if err := json.Unmarshal([]byte(frame), &f); err != nil || f.V != ProtocolVersion || f.Type == "" {
				t.Errorf("documented server frame %s: %v (v %d, type %q)", frame, err, f.V, f.Type)
			}
		}
	}
	if requests < 5 || replies < 8 {
		t.Errorf("found %d requests and %d server frames in the documentation", requests, replies)
	}
}
