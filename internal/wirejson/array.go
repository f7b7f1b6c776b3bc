package wirejson

// ParseObjectsText walks data, which must be one JSON array of objects, handing
// member each element's members as ParseObjectText does, each checked
// once: for each element it calls next, then member for each of its
// members with the value's JSON text (a view of data, valid only during
// the call). It stops early when next or member returns false. ok is false
// then, and when the input is not one array of objects.
func ParseObjectsText(data []byte, next func() bool, member func(key string, text []byte) bool) (ok bool) {
	return parseArray(data, func(p *jsonParser) bool {
		return next() && p.objectMembers(func(key string, start int) bool {
			_, ok := p.value(2)
			return ok && member(key, data[start:p.i])
		})
	})
}

// parseArray walks data, which must be one JSON array (white space around
// it aside), calling elem to parse each element at p.i; it stops early,
// false, when elem returns false.
func parseArray(data []byte, elem func(p *jsonParser) bool) bool {
	p := jsonParser{data: data, check: true}
	p.space()
	if p.i >= len(p.data) || p.data[p.i] != '[' {
		return false
	}
	p.i++
	p.space()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
	} else {
		for {
			if !elem(&p) {
				return false
			}
			if done, ok := p.next(']'); !ok {
				return false
			} else if done {
				break
			}
		}
	}
	p.space()
	return p.i == len(p.data)
}
