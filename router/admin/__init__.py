"""Administration of the router: the operations (validate, persist with audit, apply, announce), the
admin HTTP API and admin keys. The only part of the router that imports FastAPI (in `api`)."""
