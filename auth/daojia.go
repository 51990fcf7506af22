package auth

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/secret"
)

// The daojia-md5 system parameters a signed call must carry, in the order a missing
// one is reported.
var daojiaRequired = [...]string{daojia.SignParam, "timestamp", "serviceKey"}

// VerifyDaojia checks a daojia-md5 request: body is the whole request body, read as
// JSON or as a form according to contentType (daojia.ParseParams), signed with secret
// per DESIGN.md. wantServiceKey, when not empty, must equal the body's serviceKey
// (58到家 callbacks: daojia.service_key); a different one is answered like a wrong
// signature. replayScope names the caller in replay keys (the client id, or "daojia"
// for callbacks). It returns nil or an *apierror.Error.
//
// The sign is compared case-insensitively (upper-cased, then compared in constant
// time with the upper-case signature DESIGN.md defines), because a lower-case hex
// MD5 is the same signature; the replay key holds the upper-cased sign so that
// changing its case does not make a replay look new. Checks run in VerifyHMAC's
// order: format, skew, signature, and the replay record last.
func (v *Verifier) VerifyDaojia(ctx context.Context, body []byte, contentType, replayScope, wantServiceKey string, secret secret.Secret) error {
	rp, err := v.CheckDaojia(body, contentType, replayScope, wantServiceKey, secret)
	if err != nil {
		return err
	}
	return v.Remember(ctx, rp)
}

// CheckDaojia is VerifyDaojia up to the replay check, as CheckHMAC is VerifyHMAC's.
func (v *Verifier) CheckDaojia(body []byte, contentType, replayScope, wantServiceKey string, secret secret.Secret) (Replay, error) {
	if secret.IsZero() {
		return Replay{}, errNoSecret
	}
	params, err := daojia.ParseParams(body, contentType)
	if err != nil {
		return Replay{}, apierror.BadRequest(err.Error())
	}
	for _, name := range daojiaRequired {
		if params[name] == "" {
			return Replay{}, apierror.New(http.StatusUnauthorized, "missing_credentials",
				"the "+name+" parameter is required: this call is signed with daojia-md5")
		}
	}
	ts, err := daojia.ParseTimestamp(params["timestamp"])
	if err != nil {
		return Replay{}, apierror.BadRequest(err.Error())
	}
	if err := v.checkSkew(ts); err != nil {
		return Replay{}, err
	}

	given := strings.ToUpper(params[daojia.SignParam])
	want := daojia.Sign(params, secret.Reveal())
	ok := subtle.ConstantTimeCompare([]byte(given), []byte(want))
	if wantServiceKey != "" {
		// Both checks always run, so timing does not tell which one failed.
		ok &= subtle.ConstantTimeCompare([]byte(params["serviceKey"]), []byte(wantServiceKey))
	}
	if ok != 1 {
		return Replay{}, errInvalidSignature
	}
	return v.replay("daojia-sign", replayScope, given, "sign"), nil
}
