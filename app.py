"""ResNet Explorer: `streamlit run app.py`. The navigation: Home (home.py) and the pages in pages/.

`st.navigation` names every page, so the sidebar says "Home" rather than the entry file's name,
with the icons the home page's links use.
"""

import streamlit as st

st.set_page_config(page_title="ResNet Explorer", layout="wide")
PAGES = [
    st.Page("home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Architecture.py", title="Architecture", icon=":material/account_tree:", url_path="Architecture"),
    st.Page("pages/2_Train.py", title="Train", icon=":material/play_arrow:", url_path="Train"),
    st.Page("pages/3_Inspect.py", title="Inspect", icon=":material/monitoring:", url_path="Inspect"),
    st.Page("pages/4_Attribute.py", title="Attribute", icon=":material/visibility:", url_path="Attribute"),
    st.Page("pages/5_Compare.py", title="Compare", icon=":material/compare:", url_path="Compare"),
    st.Page("pages/6_Explain.py", title="Explain", icon=":material/psychology:", url_path="Explain"),
    st.Page("pages/7_Pretrained.py", title="Pretrained", icon=":material/photo_camera:", url_path="Pretrained"),
]
st.navigation(PAGES).run()
