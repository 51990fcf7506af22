// Package auth decides who is calling and what they may do: API keys looked up by
// their SHA-256 and compared in constant time, and role-based access on
// "METHOD /path" patterns. Signature schemes (hmac-sha256, daojia-md5) live here too.
package auth
