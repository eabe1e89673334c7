package grant

// MaskKind is how a column's value is hidden. Data teams declare a column's
// mask; policy decides who sees the column raw instead.
type MaskKind string

// The masks. Each keeps the column's name and a compatible type.
const (
	MaskNull     MaskKind = "null"     // NULL of the column's type
	MaskRedact   MaskKind = "redact"   // a fixed string ('***') for text, NULL otherwise
	MaskPartial  MaskKind = "partial"  // keep the last Keep characters, the rest '*'
	MaskEmail    MaskKind = "email"    // keep the domain: '***@example.com'
	MaskHash     MaskKind = "hash"     // keyed deterministic hash (joins on it still work)
	MaskRound    MaskKind = "round"    // round a number to a multiple of Step
	MaskBucket   MaskKind = "bucket"   // lower bound of the Step-wide bucket holding the number
	MaskTruncate MaskKind = "truncate" // date_trunc(Unit, value)
)

// Mask is one column's mask.
type Mask struct {
	Kind MaskKind
	// Keep is the number of trailing characters MaskPartial leaves visible.
	Keep int
	// Step is the rounding or bucket width of MaskRound and MaskBucket.
	Step float64
	// Unit is the date_trunc unit of MaskTruncate: year, quarter, month, week, day, hour.
	Unit string
	// Key names the secret of MaskHash. The key material itself never appears
	// in SQL: the rewriter refers to it by name only.
	Key string
	// Tag is the column tag the mask was declared for, if any (for audit).
	Tag string
}
