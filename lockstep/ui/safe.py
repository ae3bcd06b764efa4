"""User text inside Markdown: escaped so that it shows as typed and never as markup."""

from __future__ import annotations

import re

# Every ASCII punctuation CommonMark lets a backslash escape, plus ':' (Streamlit's
# :color[...] and :material/...: directives) — so "<b>x</b>", "[a](javascript:...)" or
# "![](https://tracker)" in a tenant name stays literal text.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&\"'=^@%;/?,])")


def md(text: object) -> str:
    """`text` escaped for st.markdown / st.subheader / st.caption, line breaks kept as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
