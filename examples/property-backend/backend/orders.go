package backend

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The order statuses, as the mini-program shows them.
const (
	StatusPending   = "待接單"
	StatusAccepted  = "已接單"
	StatusInService = "服務中"
	StatusCompleted = "已完成"
	StatusCancelled = "已取消"
)

// transitions lists, for each status, the statuses an order may move to next.
var transitions = map[string][]string{
	StatusPending:   {StatusAccepted, StatusCancelled},
	StatusAccepted:  {StatusInService, StatusCancelled},
	StatusInService: {StatusCompleted},
	StatusCompleted: nil,
	StatusCancelled: nil,
}

// Service is a home service an owner can book.
type Service struct {
	Type string `json:"service_type"`
	Name string `json:"name"`
}

// services is what GET /api/services lists and service_type must be one of.
var services = []Service{
	{Type: "cleaning", Name: "日常保潔"},
	{Type: "appliance_washing", Name: "家電清洗"},
	{Type: "nanny", Name: "保姆"},
	{Type: "maternity_nurse", Name: "月嫂"},
}

func serviceByType(t string) (Service, bool) {
	i := slices.IndexFunc(services, func(s Service) bool { return s.Type == t })
	if i < 0 {
		return Service{}, false
	}
	return services[i], true
}

// Order is one booking, as every endpoint answers it.
type Order struct {
	ID              int64          `json:"id"`
	Name            string         `json:"name"`
	Phone           string         `json:"phone"`
	Address         string         `json:"address"`
	ServiceType     string         `json:"service_type"`
	ServiceName     string         `json:"service_name"`
	AppointmentTime time.Time      `json:"appointment_time"`
	Status          string         `json:"status"`
	Staff           *Staff         `json:"staff"` // null until a provider assigns someone
	History         []StatusChange `json:"history"`
	CreatedAt       time.Time      `json:"created_at"`
	// Owner is the openid of the owner who booked it (X-WX-OpenID, set by the
	// gateway from her WeChat session), "" when booked without one.
	Owner string `json:"-"`
}

// Staff is the provider's person sent to do the job.
type Staff struct {
	Name   string   `json:"name"`
	Phone  string   `json:"phone"`
	Photo  string   `json:"photo"`
	Skills []string `json:"skills"`
}

// StatusChange is one step of an order's history.
type StatusChange struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// bookingRequest is the body of POST /api/orders.
type bookingRequest struct {
	Name            string `json:"name"`
	Phone           string `json:"phone"`
	Address         string `json:"address"`
	ServiceType     string `json:"service_type"`
	AppointmentTime string `json:"appointment_time"`
}

// statusRequest is the body of PUT /api/orders/{id}/status.
type statusRequest struct {
	Status string `json:"status"`
}

// mobileRE is a mainland China mobile number as the mini-program collects it: 11
// digits, no prefix or separators.
var mobileRE = regexp.MustCompile(`^1[3-9][0-9]{9}$`)

const (
	maxNameRunes    = 50
	maxAddressRunes = 200
	maxSkills       = 10
	maxSkillRunes   = 20
)

// validate checks a booking made at now and returns the order it describes, without
// an id. Every message names the field and says what would be accepted.
func (req bookingRequest) validate(now time.Time) (Order, error) {
	if err := requiredText("name", req.Name, maxNameRunes); err != nil {
		return Order{}, err
	}
	if err := checkPhone("phone", req.Phone); err != nil {
		return Order{}, err
	}
	if err := requiredText("address", req.Address, maxAddressRunes); err != nil {
		return Order{}, err
	}
	svc, ok := serviceByType(req.ServiceType)
	if !ok {
		types := make([]string, len(services))
		for i, s := range services {
			types[i] = s.Type
		}
		return Order{}, badRequest("service_type %q is not a service we offer: want one of %s (GET /api/services lists them)",
			req.ServiceType, strings.Join(types, ", "))
	}
	if req.AppointmentTime == "" {
		return Order{}, badRequest("appointment_time is required, as RFC 3339: 2026-11-23T10:00:00+08:00")
	}
	at, err := time.Parse(time.RFC3339, req.AppointmentTime)
	if err != nil {
		return Order{}, badRequest("appointment_time %q is not RFC 3339 with a time zone, e.g. 2026-11-23T10:00:00+08:00", req.AppointmentTime)
	}
	if !at.After(now) {
		return Order{}, badRequest("appointment_time %s is not in the future", req.AppointmentTime)
	}
	return Order{
		Name:            strings.TrimSpace(req.Name),
		Phone:           req.Phone,
		Address:         strings.TrimSpace(req.Address),
		ServiceType:     svc.Type,
		ServiceName:     svc.Name,
		AppointmentTime: at,
	}, nil
}

func (s Staff) validate() error {
	if err := requiredText("name", s.Name, maxNameRunes); err != nil {
		return err
	}
	if err := checkPhone("phone", s.Phone); err != nil {
		return err
	}
	if u, err := url.Parse(s.Photo); err != nil || u.Scheme != "https" || u.Host == "" {
		// The mini-program loads images over HTTPS only.
		return badRequest("photo must be an https:// URL of the staff member's photo")
	}
	if len(s.Skills) == 0 || len(s.Skills) > maxSkills {
		return badRequest("skills must list 1 to %d skills", maxSkills)
	}
	for i, sk := range s.Skills {
		if err := requiredText(fmt.Sprintf("skills[%d]", i), sk, maxSkillRunes); err != nil {
			return err
		}
	}
	return nil
}

// moveTo changes o's status to next at now. Setting the status o already has is a
// no-op: PUT is idempotent, and the gateway may retry one.
func (o *Order) moveTo(next string, now time.Time) error {
	if _, known := transitions[next]; !known {
		return badRequest("status %q is not a status: want one of %s, %s, %s, %s, %s",
			next, StatusPending, StatusAccepted, StatusInService, StatusCompleted, StatusCancelled)
	}
	if next == o.Status {
		return nil
	}
	allowed := transitions[o.Status]
	if !slices.Contains(allowed, next) {
		if len(allowed) == 0 {
			return invalidTransition("order %d is %s: its status can no longer change", o.ID, o.Status)
		}
		return invalidTransition("order %d is %s: it can move to %s, not %s",
			o.ID, o.Status, strings.Join(allowed, " or "), next)
	}
	if next == StatusInService && o.Staff == nil {
		return invalidTransition("order %d has no staff: assign someone (POST /api/orders/%d/staff) before %s",
			o.ID, o.ID, StatusInService)
	}
	o.Status = next
	o.History = append(o.History, StatusChange{Status: next, At: now})
	return nil
}

// assign sets o's staff; someone can be sent, or replaced, until the service starts.
func (o *Order) assign(s Staff) error {
	if o.Status != StatusPending && o.Status != StatusAccepted {
		return invalidTransition("order %d is %s: staff can only be assigned while it is %s or %s",
			o.ID, o.Status, StatusPending, StatusAccepted)
	}
	s.Skills = slices.Clone(s.Skills)
	o.Staff = &s
	return nil
}

// clone returns a copy of o that shares nothing with it, to encode outside the lock.
func (o *Order) clone() Order {
	c := *o
	c.History = slices.Clone(o.History)
	if o.Staff != nil {
		st := *o.Staff
		st.Skills = slices.Clone(o.Staff.Skills)
		c.Staff = &st
	}
	return c
}

func requiredText(field, v string, maxRunes int) error {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return badRequest("%s is required", field)
	case utf8.RuneCountInString(v) > maxRunes:
		return badRequest("%s is longer than %d characters", field, maxRunes)
	}
	return nil
}

func checkPhone(field, v string) error {
	if v == "" {
		return badRequest("%s is required", field)
	}
	if !mobileRE.MatchString(v) {
		// The number itself stays out of the message: error text ends up in logs.
		return badRequest("%s must be a mainland mobile number: 11 digits starting 13 to 19, without spaces or +86", field)
	}
	return nil
}
