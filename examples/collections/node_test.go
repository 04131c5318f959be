package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plazahq/plaza/transport/network/jwtauth"
)

// TestNodeSeedExample runs testdata/seed.mjs, the seed documentation's
// JavaScript example and checks of the rest of the protocol, in Node with
// its global WebSocket (the browser API) against a live store. It skips
// without node, unless CI is "true".
func TestNodeSeedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node; skipped with -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and node is not installed")
		}
		t.Skip("node is not installed")
	}
	f := newFixture(t, 300*time.Millisecond)

	now := time.Now()
	sign := func(m jwt.SigningMethod, key any, c jwtauth.Claims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(mod func(*jwtauth.Claims)) jwtauth.Claims {
		c := jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{
			Subject: "mallory", Audience: jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}}
		mod(&c)
		return c
	}
	bad := map[string]string{
		"malformed": "not-a-jwt",
		"wrong key": sign(jwt.SigningMethodHS256, []byte("some-other-secret-of-32-bytes!!!"), claims(func(*jwtauth.Claims) {})),
		"alg none":  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(func(*jwtauth.Claims) {})),
		"expired": sign(jwt.SigningMethodHS256, testSecret, claims(func(c *jwtauth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		})),
		"not yet valid": sign(jwt.SigningMethodHS256, testSecret, claims(func(c *jwtauth.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
		})),
		"wrong audience": sign(jwt.SigningMethodHS256, testSecret, claims(func(c *jwtauth.Claims) {
			c.Audience = jwt.ClaimStrings{"someone-else"}
		})),
	}
	badJSON, _ := json.Marshal(bad)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"testdata/seed.mjs"}
	if exec.CommandContext(ctx, node, "-e", "process.exit(typeof WebSocket === 'undefined' ? 1 : 0)").Run() != nil {
		args = append([]string{"--experimental-websocket", "--no-warnings"}, args...)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(),
		"BASE="+f.ts.URL,
		"TOKEN="+f.tok,
		"EXPIRING="+f.token(t, "bob", 4*time.Second),
		"BAD="+string(badJSON),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("node = %v", err)
	}
	for _, want := range []string{"ok seed example", "ok ping", "ok 101st", "ok wrong audience token refused", "ok alg none token refused", "ok token expiry"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("node output lacks %q", want)
		}
	}
}
