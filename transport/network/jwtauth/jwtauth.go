// Package jwtauth authenticates Plaza connections and requests with JSON Web
// Tokens. Use [New] to build a [Verifier] from a shared secret (HS256), PEM
// public keys or a JWKS document (RS256, ES256), then plug its
// [Verifier.Authenticate] into network.Options.Authenticate and its
// [Verifier.Authorize] into network.Options.Authorize: the native WebSocket
// protocol, SSE, the HTTP routes and the collections dialect then see the
// identity each token proves instead of one a client claims.
//
// # Tokens
//
// A token must be signed with one of the algorithms its keys allow (HS256
// for Options.Secret, RS256 or ES256 for the public keys; "none" and every
// other algorithm are refused), carry exp, and be valid at the time of the
// request: exp and nbf are checked with Options.Leeway. When Options.Issuer
// or Options.Audience is set, iss or aud must match it. The identity is the
// sub claim, which must be a valid pubsub client id.
//
// # Claims
//
// Besides the registered claims, a token may narrow what it allows:
//
//	{
//	  "sub": "alice",
//	  "exp": 1768656896,
//	  "rooms":   ["records"],                 // rooms it may use; absent: every room
//	  "actions": ["subscribe", "history"],    // publish, subscribe, history; absent: all three
//	  "topics":  ["posts", "comments:*"]      // topics (globs) it may use; absent: every topic
//	}
//
// The collections dialect asks for [pubsub.ActionSubscribe] on the topic
// named after the collection, so "topics" is the list of collections a
// token may read there. Rooms and topics are globs as in package topic
// ("*" any run of characters, "?" one). An empty list allows nothing.
//
// # Expiry
//
// Authenticate sets Identity.Expires to the token's exp: network.Server
// closes a WebSocket with CloseCredentialsExpired (4003) at that instant
// unless the client sent a newer token, and the collections dialect closes
// its connections the same way.
//
// A Verifier is safe for concurrent use.
package jwtauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
	"github.com/plazahq/plaza/transport/network"
)

// DefaultLeeway is the clock skew allowed on exp and nbf when
// Options.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// MaxTokenBytes is the longest token Authenticate looks at; longer ones
// are refused without being parsed.
const MaxTokenBytes = 8 << 10

// Options configure a [Verifier]. At least one of Secret, PublicKeysPEM and
// JWKS must be set; the algorithms a token may use follow from which are.
type Options struct {
	// Secret is the HS256 shared secret. Nil means HS256 is refused.
	Secret []byte

	// PublicKeysPEM holds one or more PEM blocks ("PUBLIC KEY", "RSA PUBLIC
	// KEY" or "CERTIFICATE") of RSA keys (RS256) and P-256 keys (ES256),
	// as read from a file with os.ReadFile or [ReadFile]. A token is
	// accepted if any of them verifies it.
	PublicKeysPEM []byte

	// JWKS is a JSON Web Key Set document ({"keys":[…]}) of RSA and P-256
	// keys. Of these, a token whose header has a kid is checked with the
	// key of that kid only (the PublicKeysPEM keys are tried as well);
	// one without a kid with every key that fits its algorithm.
	JWKS []byte

	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string

	// Leeway is the clock skew allowed on exp and nbf. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration

	// Clock tells the time tokens are checked against. Nil means
	// pubsub.SystemClock{}.
	Clock pubsub.Clock
}

// ReadFile returns the contents of the file at path, for
// Options.PublicKeysPEM or Options.JWKS.
func ReadFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: %w", err)
	}
	return b, nil
}

// Claims are the claims of a verified token.
type Claims struct {
	jwt.RegisteredClaims
	// Rooms lists the rooms (globs) the token may use; nil means all.
	Rooms []string `json:"rooms,omitempty"`
	// Actions lists the actions ("publish", "subscribe", "history") the
	// token allows; nil means all.
	Actions []string `json:"actions,omitempty"`
	// Topics lists the topics (globs) the token may use; nil means all.
	Topics []string `json:"topics,omitempty"`
}

// Allows reports whether the claims allow a.
func (c *Claims) Allows(a pubsub.Access) bool {
	if c.Actions != nil && !slices.Contains(c.Actions, string(a.Action)) {
		return false
	}
	if c.Rooms != nil && !matchAny(c.Rooms, a.Room) {
		return false
	}
	if c.Topics != nil && !matchAny(c.Topics, a.Topic) {
		return false
	}
	return true
}

// matchAny reports whether name matches one of the globs. A subscription
// to a pattern is allowed only by a glob written exactly as that pattern.
func matchAny(globs []string, name string) bool {
	wild := topic.IsPattern(name)
	for _, g := range globs {
		if g == name {
			return true
		}
		if wild {
			continue
		}
		if p, err := topic.ParsePattern(g); err == nil && p.Match(name) {
			return true
		}
	}
	return false
}

// Verifier checks tokens. Build one with [New].
type Verifier struct {
	opts    Options
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
}

// New returns a Verifier for o. It fails if no key is set or a key cannot
// be parsed.
func New(o Options) (*Verifier, error) {
	if o.Clock == nil {
		o.Clock = pubsub.SystemClock{}
	}
	switch {
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	case o.Leeway < 0:
		o.Leeway = 0
	}
	var (
		algs    []string
		pemKeys []crypto.PublicKey
		jwks    keyfunc.Keyfunc
	)
	if len(o.Secret) > 0 {
		algs = append(algs, jwt.SigningMethodHS256.Alg())
	}
	if len(o.PublicKeysPEM) > 0 {
		keys, err := parsePEM(o.PublicKeysPEM)
		if err != nil {
			return nil, err
		}
		pemKeys = keys
	}
	if len(o.JWKS) > 0 {
		k, err := keyfunc.NewJWKSetJSON(json.RawMessage(o.JWKS))
		if err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS: %w", err)
		}
		jwks = k
	}
	if pemKeys != nil || jwks != nil {
		algs = append(algs, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	if len(algs) == 0 {
		return nil, errors.New("jwtauth: no key: set Secret, PublicKeysPEM or JWKS")
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Clock.Now),
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	v := &Verifier{opts: o, parser: jwt.NewParser(popts...)}
	v.keyfunc = func(t *jwt.Token) (any, error) {
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			return o.Secret, nil
		}
		set := jwt.VerificationKeySet{}
		for _, k := range pemKeys {
			if fits(t.Method, k) {
				set.Keys = append(set.Keys, k)
			}
		}
		if jwks != nil {
			k, err := jwks.Keyfunc(t)
			if err != nil && len(set.Keys) == 0 {
				return nil, err
			}
			switch k := k.(type) {
			case jwt.VerificationKeySet:
				for _, k := range k.Keys {
					if fits(t.Method, k) {
						set.Keys = append(set.Keys, k)
					}
				}
			default:
				if k != nil && fits(t.Method, k) {
					set.Keys = append(set.Keys, k)
				}
			}
		}
		if len(set.Keys) == 0 {
			return nil, fmt.Errorf("no %s key", t.Method.Alg())
		}
		return set, nil
	}
	return v, nil
}

// fits reports whether key can verify method.
func fits(m jwt.SigningMethod, key crypto.PublicKey) bool {
	switch m.(type) {
	case *jwt.SigningMethodRSA:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	}
	return false
}

// parsePEM returns every public key of the PEM blocks in b.
func parsePEM(b []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch blk.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				k = c.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("jwtauth: PEM %s: %w", blk.Type, err)
		}
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			keys = append(keys, k)
		default:
			return nil, fmt.Errorf("jwtauth: PEM %s: unsupported key type %T", blk.Type, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("jwtauth: PublicKeysPEM holds no public key")
	}
	return keys, nil
}

// Verify checks token and returns its claims. Every failure is a
// *pubsub.Error with code UNAUTHENTICATED whose message says why.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "jwtauth: no token")
	}
	if len(token) > MaxTokenBytes {
		return nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "jwtauth: token is longer than %d bytes", MaxTokenBytes)
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyfunc); err != nil {
		return nil, &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: "jwtauth: " + reason(err), Err: err}
	}
	if err := pubsub.CheckClientID(c.Subject); err != nil {
		return nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "jwtauth: sub claim is not a valid client id")
	}
	return &c, nil
}

// reason words a parse failure for the client.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signature invalid or algorithm not allowed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token issuer not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token audience not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, c := range []string{"exp", "aud", "iss"} {
			if strings.Contains(err.Error(), c+" claim is required") {
				return "token has no " + c + " claim"
			}
		}
		return "token misses a required claim"
	}
	return "invalid token"
}

// Authenticate verifies credential as a token and returns the identity it
// proves: ClientID is sub, Expires is exp and Info the *Claims. It has the
// signature of network.Options.Authenticate.
func (v *Verifier) Authenticate(_ context.Context, _ *http.Request, credential string) (network.Identity, error) {
	c, err := v.Verify(credential)
	if err != nil {
		return network.Identity{}, err
	}
	return network.Identity{ClientID: c.Subject, Expires: c.ExpiresAt.Time, Info: c}, nil
}

// Authorize allows a only when the identity's claims do (see [Claims.Allows]);
// it refuses identities that Authenticate did not make. It has the
// signature of network.Options.Authorize.
func (v *Verifier) Authorize(_ context.Context, id network.Identity, a pubsub.Access) error {
	c, ok := id.Info.(*Claims)
	if !ok {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "jwtauth: connection was not authenticated with a token")
	}
	if !c.Allows(a) {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "jwtauth: token does not allow %s on %s/%s", a.Action, a.Room, a.Topic)
	}
	return nil
}
