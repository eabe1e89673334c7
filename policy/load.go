package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-proxy/mandate/grant"
)

// Sources names the files a policy snapshot is loaded from.
type Sources struct {
	PolicyDir string // directory of *.cedar files; every policy carries @id("...")
	Schema    string // Cedar schema, human-readable format (*.cedarschema)
	Entities  string // Cedar entities JSON: users, groups, agents
	Masks     string // masks YAML; empty: no column is masked by declaration
}

// Snapshot is one immutable, validated load of the sources. Decisions read a
// snapshot without locks; a reload builds a new one and swaps it in whole.
type Snapshot struct {
	Version  uint64 // assigned by the Engine, increasing with every reload
	LoadedAt time.Time

	schema   *cedarSchema
	policies []*cedarPolicy
	entities types.EntityMap
	masks    *Masks
	// index holds, per (action id, relation), the policies whose action and
	// resource scopes can match, so a decision evaluates only those.
	index map[indexKey][]*cedarPolicy
	// unmaskReadsColumn marks relations with an unmask policy that reads
	// context.column: their masks are decided column by column.
	unmaskReadsColumn map[string]bool
	// noConsent is context.consenting when nobody consents: all sets empty.
	noConsent types.Record
}

type indexKey struct{ action, relation string }

// Load reads and validates the sources: policies against the schema,
// entities against the schema, masks against the schema's tables. Errors
// name the file and line.
func Load(src Sources) (*Snapshot, error) {
	schemaSrc, err := os.ReadFile(src.Schema)
	if err != nil {
		return nil, &Error{Code: CodeConfigFile, Msg: "reading Cedar schema", Err: err}
	}
	cs, err := parseSchema(src.Schema, schemaSrc)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{LoadedAt: time.Now(), schema: cs}
	if s.policies, err = loadPolicies(src.PolicyDir, cs); err != nil {
		return nil, err
	}
	if s.entities, err = loadEntities(src.Entities, cs); err != nil {
		return nil, err
	}
	if src.Masks != "" {
		b, err := os.ReadFile(src.Masks)
		if err != nil {
			return nil, &Error{Code: CodeConfigFile, Msg: "reading masks", Err: err}
		}
		if s.masks, err = ParseMasks(src.Masks, b); err != nil {
			return nil, err
		}
		if err := s.masks.checkTables(cs.tables); err != nil {
			return nil, err
		}
	}
	s.buildIndex()
	empty := make(types.RecordMap, len(cs.consentAttrs))
	for _, a := range cs.consentAttrs {
		empty[types.String(a)] = emptySet
	}
	s.noConsent = types.NewRecord(empty)
	return s, nil
}

func loadPolicies(dir string, cs *cedarSchema) ([]*cedarPolicy, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, &Error{Code: CodeConfigFile, Msg: "listing policies", Err: err}
	}
	if len(files) == 0 {
		return nil, configError("%s: no *.cedar policy files", dir)
	}
	slices.Sort(files)
	var all []*cedarPolicy
	seen := map[string]string{}
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{Code: CodeConfigFile, Msg: "reading policies", Err: err}
		}
		ps, err := parsePolicies(f, b, cs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range ps {
			if prev, dup := seen[p.id]; dup {
				errs = append(errs, fmt.Errorf("%s: policy id %q is already used at %s", p.pos, p.id, prev))
				continue
			}
			seen[p.id] = p.pos
			all = append(all, p)
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Code: CodeConfigFile, Msg: errors.Join(errs...).Error()}
	}
	return all, nil
}

// loadEntities reads a Cedar entities JSON array and validates each entity
// against the schema. The schema's action entities are added so that
// `action in [...]` sees the action hierarchy.
func loadEntities(file string, cs *cedarSchema) (types.EntityMap, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{Code: CodeConfigFile, Msg: "reading entities", Err: err}
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, configError("%s: %s", jsonPos(file, b, err), err)
	}
	em := make(types.EntityMap, len(raw)+len(cs.actionEntities))
	for i, r := range raw {
		var e types.Entity
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, configError("%s: entity #%d: %v", file, i+1, err)
		}
		if _, dup := em[e.UID]; dup {
			return nil, configError("%s: entity %s is listed twice", file, e.UID)
		}
		if err := cs.validateEntity(e); err != nil {
			return nil, configError("%s: entity %s: %v", file, e.UID, err)
		}
		em[e.UID] = e
	}
	for _, a := range cs.actionEntities {
		em[a.UID] = a
	}
	return em, nil
}

// jsonPos turns a JSON decoding error's byte offset into file:line.
func jsonPos(file string, b []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(b)) {
		return file
	}
	return fmt.Sprintf("%s:%d", file, 1+strings.Count(string(b[:off]), "\n"))
}

// decidedActions are the Cedar action ids the engine asks about.
var decidedActions = []string{string(grant.Select), string(grant.Insert), string(grant.Update), string(grant.Delete), actionUnmask}

func (s *Snapshot) buildIndex() {
	s.index = map[indexKey][]*cedarPolicy{}
	s.unmaskReadsColumn = map[string]bool{}
	for _, id := range decidedActions {
		uid, ok := s.schema.actions[id]
		if !ok {
			continue
		}
		for name, t := range s.schema.tables {
			for _, p := range s.policies {
				if p.appliesTo(uid, t, s.entities) {
					k := indexKey{id, name}
					s.index[k] = append(s.index[k], p)
					if id == actionUnmask && p.readsColumn {
						s.unmaskReadsColumn[name] = true
					}
				}
			}
		}
	}
}

// PolicyIDs lists the ids of the loaded policies, sorted.
func (s *Snapshot) PolicyIDs() []string {
	ids := make([]string, len(s.policies))
	for i, p := range s.policies {
		ids[i] = p.id
	}
	slices.Sort(ids)
	return ids
}

// Tables lists the protected relations the Cedar schema declares, sorted.
func (s *Snapshot) Tables() []string {
	out := make([]string, 0, len(s.schema.tables))
	for name := range s.schema.tables {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// CheckCatalog compares the Cedar schema with the live catalog: every
// protected table must exist, and every attribute of its entity type must
// be one of its columns (a policy over a missing column would fail closed
// at every statement).
func (s *Snapshot) CheckCatalog(catalog []RelationInfo) error {
	cols := make(map[string]map[string]bool, len(catalog))
	for _, r := range catalog {
		cols[r.Name] = make(map[string]bool, len(r.Columns))
		for _, c := range r.Columns {
			cols[r.Name][c.Name] = true
		}
	}
	var errs []string
	for _, name := range s.Tables() {
		t := s.schema.tables[name]
		have, ok := cols[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s (%s) is not in the catalog", name, t.etype))
			continue
		}
		for attr := range t.attrs {
			if !have[attr] {
				errs = append(errs, fmt.Sprintf("%s (%s) has no column %q", name, t.etype, attr))
			}
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return &Error{Code: CodeConfigFile, Msg: strings.Join(errs, "\n")}
	}
	return nil
}
