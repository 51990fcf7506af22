package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/apierror"
	"github.com/signgate/signgate/apispec"
	"github.com/signgate/signgate/config"
	"github.com/signgate/signgate/mask"
	"github.com/signgate/signgate/proxy"
	"github.com/signgate/signgate/reqinfo"
)

// The directions a route's traffic is validated in: the metric's label values.
const (
	directionRequest  = "request"
	directionResponse = "response"
)

// Why an answer (or a request's body) went unchecked: the skipped metric's reasons.
const (
	skipStream      = "stream"       // server-sent events, NDJSON: no end to wait for
	skipTooLarge    = "too_large"    // over masking.max_body_bytes, declared or read
	skipEncoding    = "encoding"     // a Content-Encoding the gateway cannot read back
	skipNoOperation = "no_operation" // no operation covers the request, so no answer is specified
)

// loadSpecs loads and checks cfg's openapi.specs, and checks that every route with
// validate: is one some operation covers (a route none covers would refuse, or
// report, every request it takes). Problems come back as config.Errors at the lines
// the config file names them, so a reload logs and refuses a broken spec as it does
// a broken config, and the running config keeps serving. With no specs it returns
// nil, nil.
func loadSpecs(cfg *config.Config) (*apispec.Spec, error) {
	if len(cfg.OpenAPI.Specs) == 0 {
		return nil, nil
	}
	spec, err := apispec.Load(cfg.OpenAPI.Specs)
	var problems apispec.Problems
	switch {
	case errors.As(err, &problems):
		errs := make(config.Errors, len(problems))
		for i, p := range problems {
			errs[i] = cfg.ProblemAt(fmt.Sprintf("openapi.specs[%d]", p.Spec), "%s", p)
		}
		return nil, errs
	case err != nil:
		return nil, config.Errors{cfg.ProblemAt("openapi.specs", "%v", err)}
	}
	var errs config.Errors
	for i, rt := range cfg.Routes {
		if rt.Validate.Checks() && !spec.Covers(rt.Match) {
			errs = append(errs, cfg.ProblemAt(fmt.Sprintf("routes[%d].match", i),
				"route %q validates against openapi.specs, but no operation there covers %q: every request would be refused as not in the interface spec",
				rt.Name, rt.Match))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return spec, nil
}

// CheckSpecs is what `signgate validate` adds to the config file's own checks: the
// specs load, and each validated route is covered by an operation. It returns
// config.Errors, or nil.
func CheckSpecs(cfg *config.Config) error {
	_, err := loadSpecs(cfg)
	return err
}

// validation holds one route's traffic to the interface spec.
type validation struct {
	spec    *apispec.Spec
	route   string
	request string // enforce | report | "" (off)
	answer  string // enforce | report | "" (off)
	maxBody int64  // answers larger than this are passed unchecked
	masker  *mask.Masker
	logger  *slog.Logger
	counts  validationCounters
}

func newValidation(spec *apispec.Spec, rt config.Route, maxBody int64, masker *mask.Masker, logger *slog.Logger, m *metrics) *validation {
	mode := func(s string) string {
		if s == "enforce" || s == "report" {
			return s
		}
		return ""
	}
	return &validation{
		spec:    spec,
		route:   rt.Name,
		request: mode(rt.Validate.Request),
		answer:  mode(rt.Validate.Response),
		maxBody: maxBody,
		masker:  masker,
		logger:  logger,
		counts:  m.validationCounters(rt.Name),
	}
}

// validationCounters are a route's validation series.
type validationCounters struct {
	route             string
	request, response prometheus.Counter
	skipped           *prometheus.CounterVec
}

func (c validationCounters) failed(direction string) {
	if direction == directionRequest {
		c.request.Inc()
	} else {
		c.response.Inc()
	}
}

func (c validationCounters) skip(direction, reason string) {
	c.skipped.WithLabelValues(c.route, direction, reason).Inc()
}

// validateTraffic checks a route's requests and answers against the spec. It runs
// after authentication, authorization and the rate limits, so a caller who may not
// call the route learns nothing about the spec from it, and before mask_request
// rewrites the body and the response cache answers, so the request checked is the
// one the caller sent. The answer is checked in the proxy's response hook, ahead of
// the masking hook: as the upstream sent it, not as a masked caller will see it.
func validateTraffic(v *validation) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method, path := decided(r)
			op, params := v.spec.Find(method, path)
			if v.request != "" && !v.checkRequest(w, r, op, params, method, path) {
				return
			}
			if v.answer == "" || r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			if op == nil {
				v.counts.skip(directionResponse, skipNoOperation)
				next.ServeHTTP(w, r)
				return
			}
			// Ask only for an encoding the check can read back, as masking does.
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				r.Header.Set("Accept-Encoding", "gzip")
			} else {
				r.Header.Set("Accept-Encoding", "identity")
			}
			ctx := r.Context()
			then := proxy.ResponseHookFrom(ctx)
			hook := func(resp *http.Response) error {
				if err := v.checkAnswer(ctx, resp, r, op, params); err != nil {
					return err
				}
				if then != nil {
					return then(resp)
				}
				return nil
			}
			next.ServeHTTP(w, r.WithContext(proxy.WithResponseHook(ctx, hook)))
		})
	}
}

// checkRequest checks r against op and reports whether it may go on: it may unless
// it breaks the spec in enforce mode, which answers 400 here.
func (v *validation) checkRequest(w http.ResponseWriter, r *http.Request, op *apispec.Operation, params map[string]string, method, path string) bool {
	if op == nil {
		v.counts.failed(directionRequest)
		v.logRequest(r, nil, "not in the interface spec")
		if v.request == "enforce" {
			apierror.Write(w, r, apierror.BadRequest(v.masker.String(fmt.Sprintf(
				"%s %s is not in the interface spec: no operation of it takes this method and path", method, path))))
			return false
		}
		return true
	}
	body, err := bufferBody(r)
	if err != nil {
		apierror.Write(w, r, err)
		return false
	}
	violations, unchecked := op.ValidateRequest(r.Context(), r, params, body)
	if unchecked != "" {
		v.counts.skip(directionRequest, unchecked)
	}
	if len(violations) == 0 {
		return true
	}
	errs := v.masked(violations)
	v.counts.failed(directionRequest)
	v.logRequest(r, errs, "")
	if v.request != "enforce" {
		return true
	}
	msg := "the request does not match the interface spec: 1 problem, in errors"
	if len(errs) > 1 {
		msg = "the request does not match the interface spec: " + strconv.Itoa(len(errs)) + " problems, in errors"
	}
	e := apierror.BadRequest(msg)
	e.Errors = errs
	apierror.Write(w, r, e)
	return false
}

// masked is violations as the caller and the log see them: a value in a message or
// a member name that is a phone number is masked, whatever the route's roles.
func (v *validation) masked(violations []apispec.Violation) []apierror.FieldError {
	out := make([]apierror.FieldError, len(violations))
	for i, x := range violations {
		out[i] = apierror.FieldError{In: x.In, At: v.masker.String(x.At), Message: v.masker.String(x.Message)}
	}
	return out
}

func (v *validation) logRequest(r *http.Request, errs []apierror.FieldError, why string) {
	info := reqinfo.Of(r)
	attrs := []slog.Attr{
		slog.String("route", v.route), slog.String("mode", v.request),
		slog.String("request_id", info.RequestID), slog.String("client", info.Client),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
	}
	if why != "" {
		attrs = append(attrs, slog.String("reason", why))
	} else {
		attrs = append(attrs, slog.Any("violations", errs))
	}
	// Info, not warn: a caller's mistakes are the caller's, and a warning per
	// request would let any caller flood the log.
	v.logger.LogAttrs(r.Context(), slog.LevelInfo, "request does not match the interface spec", attrs...)
}

// errAnswerRefused is an answer that breaks the spec on a route with response:
// enforce: the caller gets 502 upstream_error; what was wrong is in the log only.
var errAnswerRefused = errors.New("the upstream's answer does not match the interface spec (logged as \"response does not match the interface spec\")")

// checkAnswer is the response hook: it reads the upstream's answer (bounded by
// maxBody), checks it, logs and counts what breaks the spec, and puts the bytes back
// for the next hook and the caller. Streams and larger answers pass unchecked, and
// counted, never buffered whole.
func (v *validation) checkAnswer(ctx context.Context, resp *http.Response, r *http.Request, op *apispec.Operation, params map[string]string) error {
	switch kindOf(resp.Header.Values("Content-Type")) {
	case kindEventStream, kindLines:
		v.counts.skip(directionResponse, skipStream)
		return nil
	}
	if resp.ContentLength > v.maxBody {
		v.counts.skip(directionResponse, skipTooLarge)
		return nil
	}
	enc, ok := contentCoding(resp.Header.Values("Content-Encoding"))
	if !ok {
		v.counts.skip(directionResponse, skipEncoding)
		return nil
	}
	bufs := getBuffers()
	raw, err := readBody(bufs.raw[:0], resp.Body, resp.ContentLength, v.maxBody)
	bufs.raw = raw
	if err != nil {
		// The upstream broke off mid-answer; the caller gets 502 as when masking
		// meets the same.
		bufs.release()
		resp.Body.Close()
		return fmt.Errorf("reading the upstream's answer to check it: %w", err)
	}
	if int64(len(raw)) > v.maxBody {
		// No Content-Length, and more than the limit: the part read goes on first,
		// then the rest as it comes.
		resp.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(raw), resp.Body), body: resp.Body, bufs: bufs}
		v.counts.skip(directionResponse, skipTooLarge)
		return nil
	}
	resp.Body.Close()
	resp.Body = &pooledBody{Reader: bytes.NewReader(raw), bufs: bufs}
	plain, err := decode(raw, enc, v.maxBody)
	if err != nil {
		v.counts.skip(directionResponse, skipEncoding)
		return nil
	}
	violations, unchecked := op.ValidateResponse(ctx, r, params, resp.StatusCode, resp.Header, plain)
	if unchecked != "" {
		v.counts.skip(directionResponse, unchecked)
	}
	if len(violations) == 0 {
		return nil
	}
	v.counts.failed(directionResponse)
	info := reqinfo.Of(r)
	v.logger.LogAttrs(ctx, slog.LevelWarn, "response does not match the interface spec",
		slog.String("route", v.route), slog.String("mode", v.answer),
		slog.String("request_id", info.RequestID), slog.String("client", info.Client),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", resp.StatusCode), slog.Any("violations", v.masked(violations)))
	if v.answer == "enforce" {
		resp.Body.Close()
		return errAnswerRefused
	}
	return nil
}

// prefixedBody is an answer whose first bytes were read ahead: they come from the
// pooled buffer, then the rest from the upstream's body.
type prefixedBody struct {
	io.Reader
	body io.Closer
	bufs *maskBuffers
	once sync.Once
}

func (p *prefixedBody) Close() error {
	err := p.body.Close()
	p.once.Do(func() { p.bufs.release() })
	return err
}
