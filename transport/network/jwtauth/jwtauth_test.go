package jwtauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/network/jwtauth"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 10 * time.Second

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// keys are the test's signing keys, made once.
var keys = func() (k struct {
	secret    []byte
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
}) {
	k.secret = []byte("a shared secret of thirty-two b!")
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
}()

func pemOf(tb testing.TB, pubs ...any) []byte {
	tb.Helper()
	var b []byte
	for _, p := range pubs {
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			tb.Fatal(err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksOf writes the JWKS document of an RSA key "r1" and a P-256 key "e1".
func jwksOf(tb testing.TB, r *rsa.PublicKey, e *ecdsa.PublicKey) []byte {
	tb.Helper()
	ecb, err := e.Bytes() // 0x04 || X || Y
	if err != nil {
		tb.Fatal(err)
	}
	doc := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(r.N.Bytes()), "e": b64(big.NewInt(int64(r.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(ecb[1:33]), "y": b64(ecb[33:])},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// claims returns valid claims for alice at t0, for an hour.
func claims() jwtauth.Claims {
	return jwtauth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   "alice",
		Issuer:    "plaza-test",
		Audience:  jwt.ClaimStrings{"plaza"},
		IssuedAt:  jwt.NewNumericDate(t0),
		NotBefore: jwt.NewNumericDate(t0),
		ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
	}}
}

func sign(tb testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("SignedString(%s) = %v", m.Alg(), err)
	}
	return s
}

// unsigned returns an alg:none token for c.
func unsigned(tb testing.TB, c jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newVerifier(tb testing.TB, o jwtauth.Options) *jwtauth.Verifier {
	tb.Helper()
	if o.Clock == nil {
		o.Clock = fakeclock.New(t0.Add(time.Minute))
	}
	v, err := jwtauth.New(o)
	if err != nil {
		tb.Fatalf("New() = %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, jwtauth.Options{
		Secret:        keys.secret,
		PublicKeysPEM: pemOf(t, &keys.rsa.PublicKey, &keys.ec.PublicKey),
		Issuer:        "plaza-test",
		Audience:      "plaza",
	})
	jwks := newVerifier(t, jwtauth.Options{JWKS: jwksOf(t, &keys.rsa.PublicKey, &keys.ec.PublicKey)})
	pemOnly := newVerifier(t, jwtauth.Options{PublicKeysPEM: pemOf(t, &keys.rsa.PublicKey)})
	// mapClaims returns the valid claims of claims() as a map, with over
	// replacing some, to write claims in shapes the struct does not.
	mapClaims := func(over map[string]any) jwt.MapClaims {
		c := claims()
		m := jwt.MapClaims{"sub": c.Subject, "iss": c.Issuer, "aud": []string(c.Audience),
			"iat": c.IssuedAt.Unix(), "nbf": c.NotBefore.Unix(), "exp": c.ExpiresAt.Unix()}
		for k, v := range over {
			m[k] = v
		}
		return m
	}

	with := func(f func(*jwtauth.Claims)) jwtauth.Claims {
		c := claims()
		f(&c)
		return c
	}
	tests := []struct {
		name  string
		v     *jwtauth.Verifier
		token string
		want  string // "" for accepted, or a word of the refusal
	}{
		{"HS256", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", claims()), ""},
		{"RS256 PEM", v, sign(t, jwt.SigningMethodRS256, keys.rsa, "", claims()), ""},
		{"ES256 PEM", v, sign(t, jwt.SigningMethodES256, keys.ec, "", claims()), ""},
		{"RS256 JWKS kid", jwks, sign(t, jwt.SigningMethodRS256, keys.rsa, "r1", claims()), ""},
		{"ES256 JWKS kid", jwks, sign(t, jwt.SigningMethodES256, keys.ec, "e1", claims()), ""},
		{"ES256 JWKS no kid", jwks, sign(t, jwt.SigningMethodES256, keys.ec, "", claims()), ""},
		{"within leeway after exp", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Minute - 2*time.Second))
		})), ""},

		{"empty", v, "", "no token"},
		{"garbage", v, "not.a.token", "malformed"},
		{"HS256 wrong secret", v, sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two b!!"), "", claims()), "signature"},
		{"RS256 wrong key", v, sign(t, jwt.SigningMethodRS256, keys.rsa2, "", claims()), "signature"},
		{"ES256 wrong key", v, sign(t, jwt.SigningMethodES256, keys.ec2, "", claims()), "signature"},
		{"JWKS wrong key for kid", jwks, sign(t, jwt.SigningMethodRS256, keys.rsa2, "r1", claims()), "signature"},
		{"JWKS unknown kid", jwks, sign(t, jwt.SigningMethodRS256, keys.rsa, "nope", claims()), "signature"},
		{"HS256 on a verifier without secret", jwks, sign(t, jwt.SigningMethodHS256, keys.secret, "", claims()), "signature"},
		{"alg none", v, unsigned(t, claims()), "signature"},
		{"HS384", v, sign(t, jwt.SigningMethodHS384, keys.secret, "", claims()), "signature"},
		{"expired", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Minute - 10*time.Second))
		})), "expired"},
		{"no exp", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) { c.ExpiresAt = nil })), "exp claim"},
		{"not yet valid", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) {
			c.NotBefore = jwt.NewNumericDate(t0.Add(time.Hour))
		})), "not valid yet"},
		{"wrong audience", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) {
			c.Audience = jwt.ClaimStrings{"someone-else"}
		})), "audience"},
		{"no audience", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) { c.Audience = nil })), "aud claim"},
		{"wrong issuer", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) { c.Issuer = "evil" })), "issuer"},
		{"no sub", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", with(func(c *jwtauth.Claims) { c.Subject = "" })), "sub"},
		{"too long", v, strings.Repeat("a", jwtauth.MaxTokenBytes+1), "longer"},
		// Algorithm confusion: the RSA public key, which anyone may read,
		// used as an HS256 secret.
		{"HS256 signed with the PEM public key, verifier without secret", pemOnly, sign(t, jwt.SigningMethodHS256, pemOf(t, &keys.rsa.PublicKey), "", claims()), "signature"},
		{"HS256 signed with the PEM public key, verifier with secret", v, sign(t, jwt.SigningMethodHS256, pemOf(t, &keys.rsa.PublicKey, &keys.ec.PublicKey), "", claims()), "signature"},
		{"RS256 with the kid of the ES256 key", jwks, sign(t, jwt.SigningMethodRS256, keys.rsa, "e1", claims()), "signature"},
		{"aud as a string", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", mapClaims(map[string]any{"aud": "plaza"})), ""},
		{"aud as an array holding it", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", mapClaims(map[string]any{"aud": []string{"other", "plaza"}})), ""},
		{"aud as a string that differs", v, sign(t, jwt.SigningMethodHS256, keys.secret, "", mapClaims(map[string]any{"aud": "plaza2"})), "audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tt.v.Verify(tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify() = %v, want accepted", err)
				}
				if c.Subject != "alice" {
					t.Errorf("Verify().Subject = %q, want alice", c.Subject)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify() accepted the token, want a refusal saying %q", tt.want)
			}
			var perr *pubsub.Error
			if !errors.As(err, &perr) || perr.Code != pubsub.CodeUnauthenticated {
				t.Fatalf("Verify() = %v, want a *pubsub.Error with code UNAUTHENTICATED", err)
			}
			if !strings.Contains(perr.Message, tt.want) {
				t.Errorf("Verify() = %q, want a message saying %q", perr.Message, tt.want)
			}
		})
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]jwtauth.Options{
		"no key":   {},
		"bad PEM":  {PublicKeysPEM: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		"no block": {PublicKeysPEM: []byte("hello")},
		"bad JWKS": {JWKS: []byte(`{"keys":`)},
	} {
		if _, err := jwtauth.New(o); err == nil {
			t.Errorf("New(%s) = nil error, want one", name)
		}
	}
}

func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pemPath := filepath.Join(dir, "keys.pem")
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(pemPath, pemOf(t, &keys.rsa.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jwksPath, jwksOf(t, &keys.rsa.PublicKey, &keys.ec.PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{pemPath, jwksPath} {
		b, err := jwtauth.ReadFile(path)
		if err != nil {
			t.Fatalf("ReadFile(%q) = %v", path, err)
		}
		o := jwtauth.Options{PublicKeysPEM: b}
		if path == jwksPath {
			o = jwtauth.Options{JWKS: b}
		}
		v := newVerifier(t, o)
		if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, keys.rsa, "r1", claims())); err != nil {
			t.Errorf("Verify() with keys from %s = %v", filepath.Base(path), err)
		}
	}
	if _, err := jwtauth.ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadFile(missing) = nil error")
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, jwtauth.Options{Secret: keys.secret})
	c := claims()
	c.Rooms = []string{"records"}
	c.Actions = []string{"subscribe", "history"}
	c.Topics = []string{"posts", "comments:*"}
	id, err := v.Authenticate(context.Background(), nil, sign(t, jwt.SigningMethodHS256, keys.secret, "", c))
	if err != nil {
		t.Fatalf("Authenticate() = %v", err)
	}
	if id.ClientID != "alice" || !id.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Authenticate() = %q expiring %v, want alice expiring %v", id.ClientID, id.Expires, t0.Add(time.Hour))
	}
	tests := []struct {
		a    pubsub.Access
		want bool
	}{
		{pubsub.Access{Action: pubsub.ActionSubscribe, Room: "records", Topic: "posts"}, true},
		{pubsub.Access{Action: pubsub.ActionHistory, Room: "records", Topic: "comments:42"}, true},
		{pubsub.Access{Action: pubsub.ActionPublish, Room: "records", Topic: "posts"}, false},
		{pubsub.Access{Action: pubsub.ActionSubscribe, Room: "lobby", Topic: "posts"}, false},
		{pubsub.Access{Action: pubsub.ActionSubscribe, Room: "records", Topic: "users"}, false},
		{pubsub.Access{Action: pubsub.ActionSubscribe, Room: "records", Topic: "comments:*"}, true},
		{pubsub.Access{Action: pubsub.ActionSubscribe, Room: "records", Topic: "*"}, false},
	}
	for _, tt := range tests {
		err := v.Authorize(context.Background(), id, tt.a)
		if got := err == nil; got != tt.want {
			t.Errorf("Authorize(%+v) = %v, want allowed %v", tt.a, err, tt.want)
		}
		if err != nil && !errors.Is(err, pubsub.ErrPermissionDenied) {
			t.Errorf("Authorize(%+v) = %v, want PERMISSION_DENIED", tt.a, err)
		}
	}
	// Without narrowing claims a token allows everything.
	all, err := v.Authenticate(context.Background(), nil, sign(t, jwt.SigningMethodHS256, keys.secret, "", claims()))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Authorize(context.Background(), all, pubsub.Access{Action: pubsub.ActionPublish, Room: "x", Topic: "*"}); err != nil {
		t.Errorf("Authorize() without narrowing claims = %v, want allowed", err)
	}
	if err := v.Authorize(context.Background(), network.Identity{ClientID: "bob"}, pubsub.Access{Action: pubsub.ActionPublish, Room: "x", Topic: "y"}); err == nil {
		t.Error("Authorize() of an identity not made by Authenticate = nil, want PERMISSION_DENIED")
	}
}

// TestServerClosesAtExpiry: a native-protocol connection authenticated with
// a token is closed when the token expires.
func TestServerClosesAtExpiry(t *testing.T) {
	clock := fakeclock.New(t0.Add(time.Minute))
	v := newVerifier(t, jwtauth.Options{Secret: keys.secret, Clock: clock})
	hub, err := memory.New(memory.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	srv := network.NewServer(hub, network.Options{Authenticate: v.Authenticate, Authorize: v.Authorize, Clock: clock, Heartbeat: -1})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	client, err := network.NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	if _, err := client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: unsigned(t, claims())}); !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Fatalf("Connect(alg none) = %v, want UNAUTHENTICATED", err)
	}
	conn, err := client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: sign(t, jwt.SigningMethodHS256, keys.secret, "", claims())})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer conn.Close()
	if conn.ClientID() != "alice" {
		t.Errorf("ClientID() = %q, want alice (the sub claim)", conn.ClientID())
	}
	clock.Advance(time.Hour)
	select {
	case <-conn.Done():
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for the server to close the connection at the token's exp")
	}
	if !errors.Is(conn.Err(), pubsub.ErrUnauthenticated) {
		t.Errorf("Err() after expiry = %v, want UNAUTHENTICATED", conn.Err())
	}
}

func FuzzVerify(f *testing.F) {
	v := newVerifier(f, jwtauth.Options{Secret: keys.secret, PublicKeysPEM: pemOf(f, &keys.rsa.PublicKey, &keys.ec.PublicKey)})
	f.Add(sign(f, jwt.SigningMethodHS256, keys.secret, "", claims()))
	f.Add(sign(f, jwt.SigningMethodES256, keys.ec, "", claims()))
	f.Add(unsigned(f, claims()))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token)
		if err == nil && c.Subject == "" {
			t.Fatalf("Verify(%q) accepted a token without sub", token)
		}
		if err != nil && !errors.Is(err, pubsub.ErrUnauthenticated) {
			t.Fatalf("Verify(%q) = %v, want UNAUTHENTICATED", token, err)
		}
	})
}
