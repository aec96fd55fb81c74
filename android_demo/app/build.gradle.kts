import groovy.json.JsonSlurper
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

// ---------------------------------------------------------------------------------------------
// The model is not committed here: `copyModel` copies it from ../tflite_models/<name>/ (where
// `python -m export` writes it) into a generated assets folder under build/, before every build.
// Asset file names come from src/main/assets/model_spec.json, the same file the app reads at run
// time and tests/test_android_manifest.py checks against every exported manifest.json.
// ---------------------------------------------------------------------------------------------
@Suppress("UNCHECKED_CAST")
val modelSpec = JsonSlurper().parse(file("src/main/assets/model_spec.json")) as Map<String, Any?>
val manifestAsset = modelSpec["manifest_asset"] as String
val modelFilePattern = modelSpec["model_file_pattern"] as String
val knownPrecisions = (modelSpec["precisions"] as List<*>).map { it.toString() }
val depthAsset = (modelSpec["depth_model"] as Map<*, *>)["asset"] as String
val matteModel = modelSpec["matte_model"] as Map<*, *>
val matteAsset = matteModel["asset"] as String

val tfliteModelsDir: File = rootProject.file("../tflite_models")
val bokehModel: String = providers.gradleProperty("bokehModel").getOrElse("").trim()
val bokehPrecisions: List<String> = providers.gradleProperty("bokehPrecision")
    .getOrElse(modelSpec["default_precision"] as String)
    .split(",").map { it.trim() }.filter { it.isNotEmpty() }
val generatedModelAssets: File = layout.buildDirectory.dir("generated/bokehModel/assets").get().asFile

/** ../tflite_models/<bokehModel>, or the only folder there with a manifest when none is named. */
fun resolveModelDir(root: File, name: String, manifest: String): File {
    if (name.isNotEmpty()) {
        val dir = File(root, name)
        if (!File(dir, manifest).isFile) {
            throw GradleException("-PbokehModel=$name: $dir has no $manifest. Export a model first: " +
                "python -m export --checkpoint CKPT --size HxW --out tflite_models/$name")
        }
        return dir
    }
    val candidates = root.listFiles { f -> File(f, manifest).isFile }.orEmpty().sortedBy { it.name }
    return candidates.singleOrNull() ?: throw GradleException(
        if (candidates.isEmpty()) "$root holds no exported model (no */$manifest). Export one first: " +
            "python -m export --checkpoint CKPT --size HxW --out tflite_models/<name>"
        else "several models in $root (${candidates.joinToString { it.name }}): choose one with -PbokehModel=<name>"
    )
}

val copyModel = tasks.register("copyModel") {
    group = "bokeh"
    description = "Copies manifest.json and bokeh_<precision>.tflite (and depth.tflite if present) " +
        "from ../tflite_models/<bokehModel>/ into the generated assets."
    val root = tfliteModelsDir
    val name = bokehModel
    val precisions = bokehPrecisions
    val out = generatedModelAssets
    inputs.property("bokehModel", name)
    inputs.property("bokehPrecision", precisions.joinToString(","))
    inputs.files(fileTree(root) { include("*/$manifestAsset", "*/" + modelFilePattern.replace("{precision}", "*"), "*/$depthAsset") })
    outputs.dir(out)
    doLast {
        val dir = resolveModelDir(root, name, manifestAsset)
        val wanted = mutableListOf(manifestAsset)
        for (p in precisions) {
            if (p !in knownPrecisions) {
                throw GradleException("-PbokehPrecision=$p: expected one or more of $knownPrecisions, comma-separated")
            }
            wanted += modelFilePattern.replace("{precision}", p)
        }
        out.deleteRecursively()
        out.mkdirs()
        for (file in wanted) {
            val src = File(dir, file)
            if (!src.isFile) {
                throw GradleException("$src is missing: the export in $dir has no $file (precisions: $precisions)")
            }
            src.copyTo(File(out, file), overwrite = true)
        }
        // Optional monocular depth model: the app offers "Estimate depth" only when it is there.
        File(dir, depthAsset).takeIf { it.isFile }?.copyTo(File(out, depthAsset), overwrite = true)
        logger.lifecycle("copyModel: ${dir.name} [${precisions.joinToString()}] -> $out")
    }
}

// The person matte (the depth of a photo that has none) is not committed either: `python -m eval.matte
// prepare` writes it from a package (npm @mediapipe/selfie_segmentation, or a mediapipe wheel), with
// its MediaPipe custom op rewritten to a builtin one; this task copies that file.
val generatedMatteAssets: File = layout.buildDirectory.dir("generated/matteModel/assets").get().asFile
val copyMatteModel = tasks.register("copyMatteModel") {
    group = "bokeh"
    description = "Copies the person-matte model (model_spec.json matte_model) from the repository's web_demo/matte/."
    val src = rootProject.file("../" + matteModel["source_dir"] as String).resolve(matteAsset)
    val prepare = matteModel["prepare"] as String
    val out = generatedMatteAssets
    inputs.files(src).optional()
    outputs.dir(out)
    doLast {
        if (!src.isFile) {
            throw GradleException("$src is missing: run `bash web_demo/setup.sh` (npm installs the MediaPipe package), " +
                "then `$prepare` from the repository root")
        }
        out.deleteRecursively()
        out.mkdirs()
        src.copyTo(File(out, matteAsset), overwrite = true)
        logger.lifecycle("copyMatteModel: $src -> $out")
    }
}

tasks.named("preBuild") { dependsOn(copyModel, copyMatteModel) }

android {
    namespace = "org.bokehgan.demo"
    compileSdk = libs.versions.compileSdk.get().toInt()

    defaultConfig {
        applicationId = "org.bokehgan.demo"
        minSdk = libs.versions.minSdk.get().toInt()
        targetSdk = libs.versions.targetSdk.get().toInt()
        versionCode = 1
        versionName = "0.1"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.toVersion(libs.versions.jvmTarget.get())
        targetCompatibility = JavaVersion.toVersion(libs.versions.jvmTarget.get())
    }

    sourceSets {
        getByName("main") {
            assets.srcDir(generatedModelAssets)
            assets.srcDir(generatedMatteAssets)
        }
    }

    // The interpreter memory-maps the model straight from the APK, which needs it uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.fromTarget(libs.versions.jvmTarget.get()))
    }
}

dependencies {
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)
    implementation(libs.litert.support)
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.lifecycle.runtime.ktx)
    implementation(libs.kotlinx.coroutines.android)
}
