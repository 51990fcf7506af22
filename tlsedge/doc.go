// Package tlsedge is the TLS side of the gateway's edge listener: it decides which
// certificate the listener serves (a self-signed one for development, a cert/key pair
// from files that is reloaded when the files change, or none when TLS is off), builds
// the *tls.Config the server listens with, and redirects plain-HTTP callers to HTTPS.
//
// The server owns the listeners; this package only hands it a config whose
// GetCertificate always returns the current certificate, so a reload never needs a
// restart or drops a connection: handshakes after the swap see the new certificate,
// connections already open keep theirs.
//
// ACME (certmagic) is a later issue; until then mode "acme" is refused by New.
package tlsedge
