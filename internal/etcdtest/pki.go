//go:build linux

package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is the files MakePKI wrote.
type PKI struct {
	CA, ServerCert, ServerKey string
	// ClientCert has an empty subject and its name in subjectAltName: etcd
	// 3.5 and later refuse a client certificate with a CommonName on the
	// JSON gateway. ClientCNCert is the same with CommonName "gwlock".
	ClientCert, ClientKey     string
	ClientCNCert, ClientCNKey string
}

// MakePKI writes a CA, a server pair for 127.0.0.1 and two client pairs.
func MakePKI(t testing.TB, dir string) PKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gwlock test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage ...x509.ExtKeyUsage) ([]byte, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"gwlock"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kd
	}
	// etcd 3.4's JSON gateway dials its own gRPC port with the server pair,
	// so under --client-cert-auth that pair must be a client certificate too.
	sc, sk := leaf(2, "etcd", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cc, ck := leaf(3, "", x509.ExtKeyUsageClientAuth)
	cnc, cnk := leaf(4, "gwlock", x509.ExtKeyUsageClientAuth)
	return PKI{CA: write("ca.pem", "CERTIFICATE", caDER),
		ServerCert: write("server.pem", "CERTIFICATE", sc), ServerKey: write("server-key.pem", "EC PRIVATE KEY", sk),
		ClientCert: write("client.pem", "CERTIFICATE", cc), ClientKey: write("client-key.pem", "EC PRIVATE KEY", ck),
		ClientCNCert: write("client-cn.pem", "CERTIFICATE", cnc), ClientCNKey: write("client-cn-key.pem", "EC PRIVATE KEY", cnk)}
}
