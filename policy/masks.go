package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v4"

	"github.com/mandate-proxy/mandate/grant"
)

// Masks is the data team's declaration of how columns are hidden, keyed by
// "schema.table.column". Whether a party sees a declared column raw is
// Cedar's decision (Action::"unmask"); the declaration only says how it
// looks when it is not.
type Masks struct {
	columns map[string]grant.Mask
	lines   map[string]int // declaration line of each column, for errors
	file    string
}

// maskSpec is one entry of the masks file, for a tag or a column.
type maskSpec struct {
	Mask string  `yaml:"mask"`
	Keep int     `yaml:"keep"`
	Step float64 `yaml:"step"`
	Unit string  `yaml:"unit"`
	Key  string  `yaml:"key"`
	Tag  string  `yaml:"tag"` // columns only: use the tag's mask
}

type maskFile struct {
	Tags    map[string]maskSpec `yaml:"tags"`
	Columns map[string]maskSpec `yaml:"columns"`
}

var truncateUnits = map[string]bool{"year": true, "quarter": true, "month": true, "week": true, "day": true, "hour": true}

// ParseMasks parses a masks file. Unknown keys, unknown mask kinds and
// missing or stray parameters are errors naming the file and line.
func ParseMasks(file string, src []byte) (*Masks, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var f maskFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, configError("%s: %v", file, err)
	}
	m := &Masks{columns: map[string]grant.Mask{}, lines: map[string]int{}, file: file}
	tags := map[string]grant.Mask{}
	for name, s := range f.Tags {
		at := fmt.Sprintf("%s:%d", file, keyLine(&root, "tags", name))
		if s.Mask == "" && hasField(&root, "tags", name, "mask") {
			s.Mask = string(grant.MaskNull)
		}
		if s.Tag != "" {
			return nil, configError("%s: tag %q: a tag cannot refer to another tag", at, name)
		}
		mk, err := s.mask()
		if err != nil {
			return nil, configError("%s: tag %q: %v", at, name, err)
		}
		mk.Tag = name
		tags[name] = mk
	}
	for col, s := range f.Columns {
		line := keyLine(&root, "columns", col)
		at := fmt.Sprintf("%s:%d", file, line)
		if strings.Count(col, ".") != 2 {
			return nil, configError("%s: column %q must be schema.table.column", at, col)
		}
		var mk grant.Mask
		if s.Tag != "" {
			if s != (maskSpec{Tag: s.Tag}) {
				return nil, configError("%s: column %q: use either tag or mask parameters, not both", at, col)
			}
			t, ok := tags[s.Tag]
			if !ok {
				return nil, configError("%s: column %q: unknown tag %q", at, col, s.Tag)
			}
			mk = t
		} else {
			if s.Mask == "" && hasField(&root, "columns", col, "mask") {
				s.Mask = string(grant.MaskNull) // `mask: null` is YAML's null
			}
			var err error
			if mk, err = s.mask(); err != nil {
				return nil, configError("%s: column %q: %v", at, col, err)
			}
		}
		m.columns[col] = mk
		m.lines[col] = line
	}
	return m, nil
}

// yamlError reports YAML decoding errors as file:line: message.
func yamlError(file string, err error) error {
	var many *yaml.LoadErrors
	var one *yaml.LoadError
	var msgs []string
	switch {
	case errors.As(err, &many):
		for _, e := range many.Errors {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, e.Mark.Line, e.Message))
		}
	case errors.As(err, &one):
		msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, one.Mark.Line, one.Message))
	default:
		msgs = append(msgs, fmt.Sprintf("%s: %v", file, err))
	}
	return &Error{Code: CodeConfigFile, Msg: strings.Join(msgs, "\n")}
}

// mask validates the parameters of one entry for its kind.
func (s maskSpec) mask() (grant.Mask, error) {
	mk := grant.Mask{Kind: grant.MaskKind(s.Mask), Keep: s.Keep, Step: s.Step, Unit: s.Unit, Key: s.Key}
	want := map[string]bool{}
	switch mk.Kind {
	case grant.MaskNull, grant.MaskRedact, grant.MaskEmail:
	case grant.MaskPartial:
		want["keep"] = true
		if s.Keep < 1 {
			return mk, errors.New("partial needs keep >= 1")
		}
	case grant.MaskHash:
		want["key"] = true
		if s.Key == "" {
			return mk, errors.New("hash needs key (the name of the hash secret)")
		}
	case grant.MaskRound, grant.MaskBucket:
		want["step"] = true
		if s.Step <= 0 {
			return mk, fmt.Errorf("%s needs step > 0", s.Mask)
		}
	case grant.MaskTruncate:
		want["unit"] = true
		if !truncateUnits[s.Unit] {
			return mk, fmt.Errorf("truncate needs unit, one of year, quarter, month, week, day, hour; got %q", s.Unit)
		}
	case "":
		return mk, errors.New("missing mask")
	default:
		return mk, fmt.Errorf("unknown mask %q", s.Mask)
	}
	for name, set := range map[string]bool{"keep": s.Keep != 0, "step": s.Step != 0, "unit": s.Unit != "", "key": s.Key != ""} {
		if set && !want[name] {
			return mk, fmt.Errorf("%s does not apply to mask %q", name, s.Mask)
		}
	}
	return mk, nil
}

// keyLine finds the line of key under the top-level section of a YAML document.
func keyLine(root *yaml.Node, section, key string) int {
	if k, _ := lookup(root, section, key); k != nil {
		return k.Line
	}
	return 0
}

// hasField reports whether the entry section.key has field, whatever its value.
func hasField(root *yaml.Node, section, key, field string) bool {
	_, v := lookup(root, section, key)
	f, _ := lookup(v, field)
	return f != nil
}

// lookup follows a path of mapping keys from n, returning the last key node
// and its value node (nil, nil when absent).
func lookup(n *yaml.Node, path ...string) (key, value *yaml.Node) {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, nil
		}
		key, value = nil, nil
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				key, value = n.Content[i], n.Content[i+1]
				break
			}
		}
		n = value
	}
	return key, value
}

// Column returns the declared mask of column col of relation rel.
func (m *Masks) Column(rel, col string) (grant.Mask, bool) {
	if m == nil {
		return grant.Mask{}, false
	}
	mk, ok := m.columns[rel+"."+col]
	return mk, ok
}

// checkTables verifies every masked column against the Cedar schema's tables:
// a typo in a masks file must not silently leave a column unmasked.
func (m *Masks) checkTables(tables map[string]*table) error {
	if m == nil {
		return nil
	}
	var errs []string
	for col := range m.columns {
		i := strings.LastIndexByte(col, '.')
		rel, name := col[:i], col[i+1:]
		t, ok := tables[rel]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("%s:%d: column %q: %s is not a table of the Cedar schema", m.file, m.lines[col], col, rel))
		case !t.attrs[name]:
			errs = append(errs, fmt.Sprintf("%s:%d: column %q: %s (%s) has no attribute %q", m.file, m.lines[col], col, rel, t.etype, name))
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return &Error{Code: CodeConfigFile, Msg: strings.Join(errs, "\n")}
	}
	return nil
}

// HashKeys lists the key names the declared hash masks use, sorted: the
// keys the proxy makes sure exist (mandate.mask_keys) before it serves.
func (m *Masks) HashKeys() []string {
	if m == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, mk := range m.columns {
		if mk.Kind == grant.MaskHash && !seen[mk.Key] {
			seen[mk.Key] = true
			out = append(out, mk.Key)
		}
	}
	slices.Sort(out)
	return out
}

// Masks returns the snapshot's mask declarations.
func (s *Snapshot) Masks() *Masks { return s.masks }
