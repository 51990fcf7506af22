package tlsedge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// fileSource watches a cert/key pair on disk. It compares content hashes rather than
// mtime and size: cp -p, tar and some secret mounts keep the mtime, and two
// certificates of one key type often have the same size. The files are a few KB, so
// reading them every poll costs nothing.
type fileSource struct {
	certFile, keyFile string
	interval          time.Duration

	initial *tls.Certificate // loaded by newFileSource; handed to the Edge by New

	// seen is the content last acted on (loaded, or reported as broken); failing is
	// broken content seen once and not yet reported. Only run touches them.
	seen, failing pairSum
}

// pairSum identifies the content of the cert and key files together.
type pairSum struct{ cert, key [sha256.Size]byte }

func newFileSource(certFile, keyFile string, interval time.Duration) (*fileSource, error) {
	if certFile == "" {
		return nil, errors.New(`tls.cert_file: required when tls.mode is "files"`)
	}
	if keyFile == "" {
		return nil, errors.New(`tls.key_file: required when tls.mode is "files"`)
	}
	if interval <= 0 {
		interval = defaultPollInterval
	}
	fs := &fileSource{certFile: certFile, keyFile: keyFile, interval: interval}
	certPEM, keyPEM, sum, err := fs.read()
	if err != nil {
		return nil, err
	}
	cert, err := fs.parse(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	fs.initial, fs.seen = cert, sum
	return fs, nil
}

// read returns both files and their sum. When a file cannot be read, sum stands for
// that error, so a file that stays missing counts as one unchanged state.
func (fs *fileSource) read() (certPEM, keyPEM []byte, sum pairSum, err error) {
	certPEM, err = os.ReadFile(fs.certFile)
	if err != nil {
		err = fmt.Errorf("tls.cert_file: %w", err)
	} else if keyPEM, err = os.ReadFile(fs.keyFile); err != nil {
		err = fmt.Errorf("tls.key_file: %w", err)
	}
	if err != nil {
		s := sha256.Sum256([]byte("read error: " + err.Error()))
		return nil, nil, pairSum{s, s}, err
	}
	return certPEM, keyPEM, pairSum{sha256.Sum256(certPEM), sha256.Sum256(keyPEM)}, nil
}

// parse loads the pair, naming the file at fault: tls.X509KeyPair's own errors do not
// say which of the two inputs was wrong.
func (fs *fileSource) parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	if !hasPEMBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, fmt.Errorf("tls.cert_file %q: no PEM CERTIFICATE block", fs.certFile)
	}
	if !hasPEMBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, fmt.Errorf("tls.key_file %q: no PEM PRIVATE KEY block", fs.keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %q with tls.key_file %q: %w", fs.certFile, fs.keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0 leaves it unset
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls.cert_file %q: %w", fs.certFile, err)
		}
	}
	return &cert, nil
}

func hasPEMBlock(data []byte, want func(blockType string) bool) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if want(b.Type) {
			return true
		}
	}
}

func (fs *fileSource) run(ctx context.Context, e *Edge) {
	t := time.NewTicker(fs.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fs.poll(e)
		}
	}
}

// poll reloads the pair if its content changed. Broken content is reported only when
// a second poll finds it unchanged: tools write the cert and then the key, and a poll
// between the two writes would otherwise log a spurious mismatch.
func (fs *fileSource) poll(e *Edge) {
	certPEM, keyPEM, sum, err := fs.read()
	if sum == fs.seen {
		return
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = fs.parse(certPEM, keyPEM)
	}
	if err != nil {
		if sum != fs.failing {
			fs.failing = sum
			e.log.Debug("tls certificate files changed but do not load yet; retrying", "error", err.Error())
			return
		}
		fs.seen, fs.failing = sum, pairSum{}
		e.log.Error("tls certificate reload failed; keeping the current certificate",
			"cert_file", fs.certFile, "key_file", fs.keyFile, "error", err.Error())
		return
	}
	fs.seen, fs.failing = sum, pairSum{}
	e.cert.Store(cert)
	e.log.Info("tls certificate reloaded", certAttrs(fs.certFile, fs.keyFile, cert)...)
	warnIfExpired(e.log, fs.certFile, cert, time.Now())
}

// certAttrs are the log fields that let an operator tell which certificate is live.
func certAttrs(certFile, keyFile string, c *tls.Certificate) []any {
	return []any{
		"cert_file", certFile, "key_file", keyFile,
		"subject", c.Leaf.Subject.String(), "dns_names", c.Leaf.DNSNames,
		"ip_addresses", ipStrings(c.Leaf), "not_after", c.Leaf.NotAfter,
	}
}

// warnIfExpired still serves an expired certificate (refusing to start would be no
// better for clients) but says so loudly.
func warnIfExpired(log *slog.Logger, certFile string, c *tls.Certificate, now time.Time) {
	if now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
		log.Warn("tls certificate is outside its validity period; clients will refuse it",
			"cert_file", certFile, "not_before", c.Leaf.NotBefore, "not_after", c.Leaf.NotAfter)
	}
}

func ipStrings(c *x509.Certificate) []string {
	s := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		s[i] = ip.String()
	}
	return s
}
