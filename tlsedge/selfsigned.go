package tlsedge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// selfSignedCN is the subject a reader of `openssl s_client` output recognises.
const selfSignedCN = "signgate self-signed"

// alwaysHosts are in every self-signed certificate so local tools work without
// configuring anything.
var alwaysHosts = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned returns a fresh self-signed ECDSA P-256 certificate for localhost,
// 127.0.0.1, ::1 and hosts, valid from now-1h (to tolerate client clock skew) to
// now+1y. Entries of hosts that parse as IP addresses become IP SANs, the rest DNS
// SANs; empty and duplicate entries are skipped. A new key is made on every call, so
// a restart serves a new certificate.
func SelfSigned(hosts []string, now time.Time) (tls.Certificate, error) {
	var dnsNames []string
	var ips []netip.Addr
	seen := make(map[string]bool)
	for _, h := range append(append([]string(nil), alwaysHosts...), hosts...) {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			continue
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return tls.Certificate{}, fmt.Errorf("host %q: an IP address with a zone cannot be a SAN", h)
			}
			ip = ip.Unmap()
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if !seen[h] {
			seen[h] = true
			dnsNames = append(dnsNames, h)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	// 128 random bits: RFC 5280 asks for unique serials, and a random one stays
	// unique across restarts without keeping state.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: selfSignedCN},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
