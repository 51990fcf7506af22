package config

import (
	"bytes"
	_ "embed"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultYAML is the embedded default config, for a first local run with no
// config.yaml. Its demo client's key hash is read from DemoKeyEnv.
//
//go:embed default.yaml
var DefaultYAML []byte

// DemoKeyEnv names the variable holding the api_key_sha256 of DefaultYAML's demo
// client. The program loading DefaultYAML supplies it, so no fixed, publicly known
// API key ships in the binary.
const DemoKeyEnv = "SIGNGATE_DEMO_KEY_SHA256"

// Load reads and parses the config file at path, expanding ${NAME} from the process
// environment. An error reading the file is returned as is, so
// errors.Is(err, fs.ErrNotExist) tells a missing file apart; any problem with its
// content is returned as Errors. Relative openapi.specs paths are read from the
// file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	cfg.OpenAPI.resolve(filepath.Dir(path))
	return cfg, nil
}

// Parse decodes, defaults and validates a config file, expanding ${NAME} with
// lookupEnv (nil: no variables are set). On failure it returns nil and Errors holding
// every problem found, in line order.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	root, problems := parseYAML(data)
	if len(problems) > 0 {
		return nil, Errors(problems)
	}
	var cfg Config
	d := newDecoder(lookupEnv)
	if root != nil {
		d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	}
	problems = d.problems
	// A file cut short at maxNodes would only add problems about what was never read.
	if d.nodes <= maxNodes {
		setDefaults(&cfg, d.set)
		v := validator{set: d.set, broken: d.broken}
		v.validate(&cfg)
		problems = append(problems, v.problems...)
	}
	if len(problems) > 0 {
		d.hideEnvValues(problems)
		sortByLine(problems)
		return nil, Errors(problems)
	}
	cfg.inlineSecrets = d.inline
	return &cfg, nil
}

// parseYAML returns the root node of the single document in data, nil for an empty
// file, or the syntax error as a Problem.
func parseYAML(data []byte) (*yaml.Node, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []Problem{syntaxProblem(err)}
	}
	// A second document would be silently ignored by a plain Unmarshal; an operator
	// who pasted two configs together should hear about it.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, []Problem{{Line: next.Line, Msg: "only one YAML document is allowed"}}
	case !errors.Is(err, io.EOF):
		return nil, []Problem{syntaxProblem(err)}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxProblem turns "yaml: line 3: mapping values are not allowed in this context"
// into a Problem with Line 3.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: "YAML syntax: " + msg[len(m[0]):]}
	}
	return Problem{Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}
