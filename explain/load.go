package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"slices"

	"github.com/signgate/signgate/config"
)

// envRef matches an ${NAME} reference without a default.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Load reads the config at path for explaining, with ${NAME} read through lookupEnv.
// A variable referenced without a default and not set gets a stand-in value, and its
// name is returned in standIns: explaining a request needs no secret (secrets decide
// whether a signature is right, never which checks apply), and the operator asking
// is often not the one who holds them.
//
// A stand-in is the SHA-256 of the variable's name in hex, which every field a
// variable usually fills (a secret, an api_key_sha256) accepts. An empty path is the
// embedded default config.
func Load(path string, lookupEnv func(string) (string, bool)) (cfg *config.Config, standIns []string, err error) {
	data := config.DefaultYAML
	if path != "" {
		if data, err = os.ReadFile(path); err != nil {
			return nil, nil, err
		}
	}
	for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
		if _, ok := lookupEnv(m[1]); !ok && !slices.Contains(standIns, m[1]) {
			standIns = append(standIns, m[1])
		}
	}
	cfg, err = config.Parse(data, func(name string) (string, bool) {
		if v, ok := lookupEnv(name); ok {
			return v, true
		}
		if slices.Contains(standIns, name) {
			sum := sha256.Sum256([]byte(name))
			return hex.EncodeToString(sum[:]), true
		}
		return "", false
	})
	return cfg, standIns, err
}
