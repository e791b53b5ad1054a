"""One router per resource; each only translates HTTP to one service call and back."""
