"""SegLab: the router. It configures the page, draws the shared sidebar and routes to lessons."""

from pathlib import Path

# Plotly imports pandas lazily; several students' page threads doing that at once on a fresh
# server see a partially initialised module. Import it once, before any page runs.
import pandas  # noqa: F401
import streamlit as st

from app import image_input, serving, sidebar

serving.configure()  # torch threads per student request, before any page runs a model
st.set_page_config(page_title="SegLab", page_icon="🧩", layout="wide")

LESSONS = Path(__file__).parent / "lessons"
#: section → (file in lessons/, title, icon, url path)
SECTIONS = {
    "Start": [
        ("00_world.py", "SegLab's street world", "🏙️", "world"),
        ("01_what_is_segmentation.py", "What is semantic segmentation?", "🎯", "segmentation"),
        ("02_compare_models.py", "Compare models", "⚖️", "compare"),
    ],
    "Building blocks": [
        ("10_alexnet.py", "AlexNet: ReLU, dropout, 227×227", "🧠", "alexnet"),
        ("11_resnet.py", "ResNet: identity shortcuts", "➰", "resnet"),
        ("12_renet.py", "ReNet: four RNN sweeps", "🔁", "renet"),
        ("13_generative_discriminative.py", "Generative vs discriminative", "⚔️", "generative"),
    ],
    "Architectures": [
        ("20_fcn.py", "From classifier to FCN", "🔭", "fcn"),
        ("21_upsampling.py", "Unpooling vs transposed convolution", "⬆️", "upsampling"),
        ("22_dilated.py", "Dilated (atrous) convolution", "🕳️", "dilated"),
        ("23_deeplab_v1.py", "DeepLab v1", "🧪", "deeplab"),
        ("24_depth.py", "Depth maps", "🗻", "depth"),
        ("25_video.py", "Video segmentation (DAVIS)", "🎞️", "video"),
    ],
    "Probabilistic models": [
        ("30_crf.py", "Conditional random fields", "🕸️", "crf"),
    ],
}

pages = {
    section: [st.Page(LESSONS / file, title=title, icon=icon, url_path=url,
                      default=(url == "world"))
              for file, title, icon, url in entries if (LESSONS / file).is_file()]
    for section, entries in SECTIONS.items()
}
page = st.navigation({section: p for section, p in pages.items() if p})
image_input.picker()
sidebar.draw()
page.run()
