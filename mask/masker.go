package mask

import "sync"

// Rules say what a Masker hides; the server builds them from config.yaml's masking
// section.
type Rules struct {
	// Fields are JSON member names whose values are masked wherever they appear,
	// compared case-sensitively: phone, mobile, userPhone, contactPhone.
	Fields []string
	// DetectMobile masks mainland mobile numbers, in any digit form, in every
	// JSON string and member name, and every JSON number that is or spells one
	// (cn_mobile).
	DetectMobile bool
	// DetectIDCard masks 18- and 15-digit ID-card numbers in JSON strings and in
	// text (cn_id_card).
	DetectIDCard bool
	// Names are JSON member names holding personal names: 张三 becomes 张*.
	Names []string
}

// mode is how the value under a member name is masked. Larger is stricter: a value
// nested under both a name member and a field member is masked as a field.
type mode uint8

const (
	modeNone mode = iota
	modeName
	modeField
)

// Masker applies one set of Rules. It is immutable after New, so one Masker serves
// all requests and log lines concurrently. A nil *Masker masks as New(Rules{}) does:
// mobile numbers in text and logs, nothing in JSON.
type Masker struct {
	members map[string]mode
	mobile  bool
	idCard  bool

	// rewriters keeps the scratch buffers of JSON passes for the next body.
	rewriters sync.Pool
}

// New compiles r into a Masker. A name listed in both Fields and Names is masked
// as a field, the stricter of the two.
func New(r Rules) *Masker {
	m := &Masker{mobile: r.DetectMobile, idCard: r.DetectIDCard}
	if len(r.Fields)+len(r.Names) > 0 {
		m.members = make(map[string]mode, len(r.Fields)+len(r.Names))
		for _, n := range r.Names {
			m.members[n] = modeName
		}
		for _, f := range r.Fields {
			m.members[f] = modeField
		}
	}
	return m
}

// idCards reports whether ID-card numbers are masked; nil-safe so text and log
// masking work on a Masker that was never configured.
func (m *Masker) idCards() bool { return m != nil && m.idCard }
