package config

import (
	"fmt"
	"path/filepath"
)

// OpenAPI lists the interface specs routes with validate: hold requests and answers to.
type OpenAPI struct {
	// Specs are OpenAPI 3.0 or 3.1 files, YAML or JSON. A relative path is read
	// from the config file's directory (Load), so a config and its spec move
	// together.
	Specs []string `yaml:"specs"`

	// lines are the decoder's lines of the file's keys, so the server, which loads
	// the specs, can place a problem with them where the file names them.
	lines map[string]int
}

// RouteValidate says what a route checks against the specs: enforce | report | off.
type RouteValidate struct {
	Request  string `yaml:"request"`
	Response string `yaml:"response"`
}

// Checks reports whether the route checks anything against the specs.
func (v RouteValidate) Checks() bool {
	return checks(v.Request) || checks(v.Response)
}

// checks reports whether a validate mode checks: enforce and report do; "" and
// off do not.
func checks(mode string) bool { return mode == "enforce" || mode == "report" }

// ProblemAt returns a Problem at path ("openapi.specs[0]", "routes[2].validate"),
// placed at the line of path or of its nearest ancestor in the file, for what is
// found wrong after Parse: a spec that does not load, a route it does not cover.
func (c *Config) ProblemAt(path, format string, args ...any) Problem {
	line := 0
	for p := path; p != "" && line == 0; p = parent(p) {
		line = c.OpenAPI.lines[p]
	}
	return Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// resolve makes the relative spec paths relative to dir, the config file's
// directory, as an operator reading the file expects: "orders.openapi.yaml" next to
// it, wherever signgate was started from.
func (o *OpenAPI) resolve(dir string) {
	for i, p := range o.Specs {
		if p != "" && !filepath.IsAbs(p) {
			o.Specs[i] = filepath.Join(dir, p)
		}
	}
}

// openAPI checks the openapi section and every route's validate: (the specs
// themselves are loaded by the server, which reports their problems with
// ProblemAt).
func (v *validator) openAPI(c *Config) {
	c.OpenAPI.lines = v.set
	for i, s := range c.OpenAPI.Specs {
		if s == "" {
			v.addf(fmt.Sprintf("openapi.specs[%d]", i), "may not be empty: want the path of an OpenAPI 3.0 or 3.1 file")
		}
	}
	for i, rt := range c.Routes {
		p := fmt.Sprintf("routes[%d].validate", i)
		v.oneOf(p+".request", rt.Validate.Request, "", "enforce", "report", "off")
		v.oneOf(p+".response", rt.Validate.Response, "", "enforce", "report", "off")
		if !rt.Validate.Checks() {
			continue
		}
		switch {
		case rt.Daojia != "":
			v.addf(p, "a daojia: relay route speaks 58到家's API, not an upstream's: validate applies to routes with an upstream")
		case rt.WeChat != "":
			v.addf(p, "a wechat: %s route is answered by the gateway itself: validate applies to routes with an upstream", rt.WeChat)
		case len(c.OpenAPI.Specs) == 0:
			v.addf(p, "needs openapi.specs: the interface spec to check requests and answers against")
		}
	}
}
