package prefs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// FileName is the preferences file in a worker's data dir.
const FileName = "prefs.toml"

// LoadFile applies prefs.toml over p. A missing file changes nothing; an
// unknown key, or a value of the wrong kind, is an error naming the file,
// the key and the value.
func LoadFile(path string, p *Prefs) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := tomlText(m[k])
		if err == nil {
			err = p.Set(k, v)
		} else {
			err = fmt.Errorf("%s = %v: %w", k, m[k], err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// tomlText turns a TOML value into the text form Set reads: strings as
// they are, numbers in decimal, an array of strings joined by commas (a
// schedule).
func tomlText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok || strings.ContainsAny(s, ",;") {
				return "", errors.New("want an array of strings without commas")
			}
			parts[i] = s
		}
		return strings.Join(parts, ", "), nil
	}
	return "", fmt.Errorf("want a string, a number or an array of strings, not %T", v)
}

// WriteFile writes every preference to path (mode 0600), so a value set
// through the control socket survives a restart.
func WriteFile(path string, p *Prefs) error {
	var b strings.Builder
	b.WriteString("# peergrid worker preferences: see `peergrid agent -h` and the README's \"Donate your machine\".\n")
	for _, k := range Keys {
		switch k {
		case "max_cpu", "pause_when_busy":
			fmt.Fprintf(&b, "%s = %s\n", k, p.Get(k))
		case "schedule":
			s := make([]string, len(p.Schedule))
			for i, w := range p.Schedule {
				s[i] = strconv.Quote(w.String())
			}
			fmt.Fprintf(&b, "%s = [%s]\n", k, strings.Join(s, ", "))
		default:
			fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(p.Get(k)))
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
