"""Event models and topic/key contracts shared by every tickwire component."""
