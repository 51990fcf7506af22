package tlsedge

import (
	"context"
	"crypto/x509"
	"slices"
	"time"
)

// CertificateExpiry is one certificate the edge serves: the name it is known by and
// the moment clients stop accepting it.
type CertificateExpiry struct {
	// Name is the ACME domain the certificate was obtained for; for a self-signed
	// or files certificate, its first DNS name, else its first IP address, else
	// its subject's common name.
	Name     string
	NotAfter time.Time
}

// Certificates returns the certificates the Edge serves now, for the expiry metric:
// the one certificate of self_signed and files mode (the reloaded one, once the files
// change), and in acme mode one per domain that has a certificate (the latest, when
// certmagic holds a renewed one beside the old). Nothing when TLS is off, and nothing
// for an ACME domain still waiting for its first certificate: /readyz reports that.
func (e *Edge) Certificates() []CertificateExpiry {
	if e.acme != nil {
		return e.acme.certificates()
	}
	c := e.cert.Load()
	if c == nil {
		return nil
	}
	leaf := leafOf(c.Certificate, c.Leaf)
	if leaf == nil {
		return nil
	}
	return []CertificateExpiry{{Name: certName(leaf), NotAfter: leaf.NotAfter}}
}

func (a *acmeSource) certificates() []CertificateExpiry {
	r := a.running.Load()
	if r == nil {
		return nil
	}
	var out []CertificateExpiry
	for _, d := range a.domains {
		var latest time.Time
		for _, c := range r.cache.AllMatchingCertificates(d) {
			if leaf := leafOf(c.Certificate.Certificate, c.Leaf); leaf != nil && leaf.NotAfter.After(latest) {
				latest = leaf.NotAfter
			}
		}
		if !latest.IsZero() {
			out = append(out, CertificateExpiry{Name: d, NotAfter: latest})
		}
	}
	return out
}

// ACMEDomains returns the names acme mode obtains certificates for, normalised as
// OnRenewalFailure reports them; nil in the other modes.
func (e *Edge) ACMEDomains() []string {
	if e.acme == nil {
		return nil
	}
	return slices.Clone(e.acme.domains)
}

// leafOf returns leaf, or parses it from the chain when a loader left it unset.
func leafOf(chain [][]byte, leaf *x509.Certificate) *x509.Certificate {
	if leaf != nil {
		return leaf
	}
	if len(chain) == 0 {
		return nil
	}
	l, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil
	}
	return l
}

// certName is the name an operator knows a certificate by: the host it is for.
func certName(c *x509.Certificate) string {
	switch {
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return c.Subject.CommonName
}

// certmagic's event for a failed attempt to obtain or renew a certificate.
const eventCertFailed = "cert_failed"

// onCertmagicEvent turns certmagic's events into Options.OnRenewalFailure calls. It
// never returns an error: certmagic reads one as "abort what you are about to do".
func (a *acmeSource) onCertmagicEvent(_ context.Context, event string, data map[string]any) error {
	if event != eventCertFailed || a.onFailure == nil {
		return nil
	}
	name, _ := data["identifier"].(string)
	if !slices.Contains(a.domains, name) {
		// Only configured domains become label values, so the series stay bounded
		// whatever certmagic reports.
		name = "other"
	}
	a.onFailure(name)
	return nil
}
