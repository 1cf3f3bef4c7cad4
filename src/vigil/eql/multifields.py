"""Multi-fields: one value indexed under several names.

A mapping may index a field's value a second time under a sub-field with another
type: ECS gives many keyword fields a ``text`` sub-field of type
``match_only_text`` (``process.command_line.text``, ``file.path.text``,
``user.name.text``: ``multi_fields`` in ECS's ``generated/ecs/ecs_flat.yml``), and
Elastic Defend gives process and file names a ``caseless`` keyword with the
``lowercase`` normalizer (elastic/endpoint-package
``package/endpoint/data_stream/*/fields/fields.yml``: ``type: keyword``,
``normalizer: lowercase``, ``ignore_above: 1024``). A document carries only
``process.name``; Elasticsearch indexes its value under ``process.name.caseless``
too (FieldMapper.parse runs the multi-fields on the parent's value, whatever the
parent's own ``ignore_above`` did with it), so a query on the sub-field reads the
parent's values, typed and limited as the sub-field.

A document that writes the sub-field's name itself (``{"process.name.caseless": x}``
or ``{"process": {"name": {"caseless": x}}}``) puts an object under the keyword
field ``process.name``, which Elasticsearch's document parser cannot map (a mapping
conflict, so the document is refused): no query ever sees such a key as the
multi-field's value, and Vigil does not read it.

The multi-fields come from Vigil's field table (:mod:`vigil.eql.ecs`: a name whose
parent is itself a field there) or, for a mapping given by the user, from its
``fields`` (:meth:`vigil.eql.schema.Schema.multi_field`).
"""

from __future__ import annotations

from functools import lru_cache

from vigil.eql import ecs

# Normalizers by sub-field name, for the field table, which has no normalizer column:
# every ``caseless`` multi-field Elastic ships is a lowercase-normalized keyword.
_NORMALIZERS = {"caseless": "lowercase"}


@lru_cache(maxsize=4096)
def ecs_multi_field(name: str) -> tuple[str, str | None] | None:
    """(parent field, normalizer) when ``name`` is a multi-field of the field table;
    None otherwise. A ``caseless`` sub-field of any string field counts too (Elastic
    Defend maps more of them than the table, which keeps those rules name)."""
    parent, _, sub = name.rpartition(".")
    if not parent:
        return None
    table = ecs._table()
    if name in table and parent in table:
        return parent, _NORMALIZERS.get(sub)
    if sub == "caseless" and ecs.mapping_type(parent) in ("keyword", "wildcard"):
        return parent, "lowercase"
    return None


def multi_field(name: str, schema) -> tuple[str, str | None] | None:
    """(parent field, normalizer) of a multi-field under ``schema`` (None: no schema,
    as Elastic maps the data), or None when ``name`` is no multi-field."""
    own = getattr(schema, "multi_field", None)
    found = own(name) if own is not None else None
    if found is not None:
        return found
    if schema is None or getattr(schema, "untyped", False) or getattr(schema, "use_ecs", False):
        return ecs_multi_field(name)
    return None
