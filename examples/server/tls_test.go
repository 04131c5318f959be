package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "plaza test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// With -tls-cert and -tls-key the server speaks HTTPS and WSS: plain HTTP
// requests, the SSE stream and the Go client over wss:// all work with a
// client that trusts the certificate.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	var out strings.Builder
	addr := startWith(t, config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, tlsCert: certFile, tlsKey: keyFile}, &out, io.Discard).addr
	if want := "Plaza hub listening on https://" + addr; !strings.Contains(out.String(), want) {
		t.Errorf("the server prints %q, want %q", out.String(), want)
	}
	hc := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()

	resp, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET https://…/healthz = %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET https://…/healthz = %d, want 200", resp.StatusCode)
	}
	// A client that does not trust the certificate is refused.
	if resp, err := plainClient.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("GET with the system's roots succeeded, want a certificate error")
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client, err := network.NewClient("wss://"+addr, &network.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	room, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: "sk:bob"})
	if err != nil {
		t.Fatalf("Join over wss:// = %v", err)
	}
	defer room.Leave(ctx)
	got := make(chan pubsub.Message, 1)
	if _, err := room.Subscribe(ctx, "alerts", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/lobby/pubsub/alerts/publish", strings.NewReader(`{"message": "over TLS"}`))
	req.Header.Set("Authorization", "Bearer pk")
	req.Header.Set("Content-Type", "application/json")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatalf("POST https://…/publish = %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST https://…/publish = %d", resp.StatusCode)
	}
	select {
	case m := <-got:
		if string(m.Payload) != `"over TLS"` {
			t.Errorf("received %s, want \"over TLS\"", m.Payload)
		}
	case <-ctx.Done():
		t.Fatal("the wss:// subscriber received nothing")
	}
}

// A certificate that cannot be loaded stops the server at start, naming the
// settings.
func TestTLSBadFiles(t *testing.T) {
	certFile, _, _ := selfSigned(t)
	err := run(context.Background(), testConfig(config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, tlsCert: certFile, tlsKey: certFile}), io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "-tls-cert") || !strings.Contains(err.Error(), "-tls-key") {
		t.Errorf("run with a certificate as its own key = %v, want an error naming -tls-cert and -tls-key", err)
	}
}
