"""Converters from the public datasets' own layouts to kmat's prepared layout (``kmat data prepare``).

One module per dataset (``midas``, ``derm7pt``, ``ccccii``, ``chestxray``, ``dmid``, ``busi``) reads the
publisher's folder tree and metadata and returns :class:`~kmat.tasks.converters.layout.Item` lists per split;
:func:`~kmat.tasks.converters.layout.write_prepared` links (or copies, or converts) the files under the data
root and writes ``splits.json``. Shared pieces: ``files`` (finding files), ``tables`` (CSV/XLSX),
``images`` (PNG conversion where needed), ``splitting`` (seeded, stratified, patient-level splits).
"""
