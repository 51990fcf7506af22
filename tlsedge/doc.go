// Package tlsedge is the TLS side of the gateway's edge listener: it decides which
// certificate the listener serves (a self-signed one for development, a cert/key pair
// from files that is reloaded when the files change, certificates obtained and renewed
// over ACME by certmagic, or none when TLS is off), builds
// the *tls.Config the server listens with, and redirects plain-HTTP callers to HTTPS.
//
// The server owns the listeners; this package only hands it a config whose
// GetCertificate always returns the current certificate, so a reload never needs a
// restart or drops a connection: handshakes after the swap see the new certificate,
// connections already open keep theirs. Certificates says what is being served and
// until when, in every mode, for the expiry metric the alarms watch.
//
// In acme mode several instances share one certificate through a certmagic.Storage:
// RedisStorage keeps certificates, the ACME account and challenge data in Redis, and
// its lock (with a TTL the holder refreshes) lets exactly one instance talk to the CA
// at a time while a crashed one cannot block renewals for longer than the TTL.
package tlsedge
