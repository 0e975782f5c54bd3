"""Field checks shared by the API's services (names, metadata maps)."""

from __future__ import annotations

from nimbus import errors

MAX_NAME = 255
MAX_METADATA_ITEMS = 128


def validate_name(name: str, field: str = "name", required: bool = True) -> str:
    """A name (or any short text): stripped, at most MAX_NAME characters, no
    control characters; blank is refused when `required`."""
    stripped = name.strip()
    if required and not stripped:
        raise errors.InvalidArgument(field, "is required and must not be blank")
    if len(stripped) > MAX_NAME:
        raise errors.InvalidArgument(field, f"must be at most {MAX_NAME} characters")
    if any(ord(ch) < 32 for ch in stripped):
        raise errors.InvalidArgument(field, "must not contain control characters")
    return stripped


def validate_metadata(metadata, field: str = "metadata", max_items: int | None = MAX_METADATA_ITEMS) -> None:
    """Key and value lengths; the item count too, unless a quota limits it
    (server metadata: the project's metadata_items)."""
    if max_items is not None and len(metadata) > max_items:
        raise errors.InvalidArgument(field, f"at most {max_items} items")
    for key, value in metadata.items():
        if not key or len(key) > 255:
            raise errors.InvalidArgument(f"{field}[{key!r}]", "keys must be 1 to 255 characters")
        if len(value) > 255:
            raise errors.InvalidArgument(f"{field}[{key!r}]", "values must be at most 255 characters")
