// Package daojia speaks the 58到家 open platform's protocol: its MD5 signature, the
// parameters of a call, the accessToken cache, the relay that signs outbound calls,
// and a local sandbox that stands in for the platform.
package daojia
