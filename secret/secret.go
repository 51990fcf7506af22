// Package secret holds the Secret type: a string that never prints itself, so a
// careless log line, error or JSON dump cannot leak a client secret or password.
package secret

import "log/slog"

// Secret is a sensitive string. Use Reveal where the value is really needed.
type Secret string

const redacted = "[redacted]"

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return redacted }

// GoString keeps %#v from revealing the value.
func (s Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer without revealing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler without revealing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler without revealing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret value itself.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }
