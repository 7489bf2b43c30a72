//! A generated corpus of true secrets and decoys, one file per case. Every key is
//! random and assembled from pieces at run time, so this source holds no key a
//! scanner would (rightly) report.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use rand::Rng;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// One corpus file: its path, its content, and what a good scanner reports there
/// (`(rule id, value)`; empty for a decoy).
pub struct Case {
    pub path: String,
    pub content: String,
    pub expect: Vec<(&'static str, String)>,
}

impl Case {
    pub fn is_decoy(&self) -> bool {
        self.expect.is_empty()
    }
}

/// Random string over `alphabet`, guaranteed to hold an upper, lower and digit
/// when the alphabet has them (real generated keys practically always do).
pub fn rand_str(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    loop {
        let s: String = (0..n)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
            .collect();
        let lo = s.bytes().any(|b| b.is_ascii_lowercase());
        let up = s.bytes().any(|b| b.is_ascii_uppercase());
        let di = s.bytes().any(|b| b.is_ascii_digit());
        let need_lo = alphabet.iter().any(|b| b.is_ascii_lowercase());
        let need_up = alphabet.iter().any(|b| b.is_ascii_uppercase());
        let need_di = alphabet.iter().any(|b| b.is_ascii_digit());
        let placeholderish = s.to_ascii_lowercase().contains("xxxx")
            || s.to_ascii_lowercase().contains("your")
            || s.to_ascii_lowercase().contains("example");
        if (lo || !need_lo) && (up || !need_up) && (di || !need_di) && !placeholderish {
            return s;
        }
    }
}

fn base62_6(mut n: u32) -> String {
    let a = &ALNUM_BASE62;
    let mut out = [b'0'; 6];
    let mut i = 6;
    while n > 0 {
        i -= 1;
        out[i] = a[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}
const ALNUM_BASE62: [u8; 62] = *b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A GitHub token of kind `p`/`o`/`u`/`s`/`r` with a valid CRC32 checksum.
pub fn github_token(kind: char) -> String {
    let random = rand_str(ALNUM, 30);
    format!(
        "gh{kind}_{random}{}",
        base62_6(crc32fast::hash(random.as_bytes()))
    )
}

/// A GitHub-shaped token whose checksum is wrong.
pub fn github_token_bad_crc() -> String {
    let good = github_token('p');
    let mut bytes = good.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

pub fn openai_project_key() -> String {
    format!(
        "{}-{}-{}{}{}",
        "sk",
        "proj",
        rand_str(URLSAFE, 74),
        ["T3Blbk", "FJ"].concat(),
        rand_str(URLSAFE, 74)
    )
}

pub fn anthropic_key() -> String {
    format!("{}-ant-api03-{}AA", "sk", rand_str(URLSAFE, 93))
}

pub fn aws_key_id() -> String {
    format!("{}{}", ["AK", "IA"].concat(), rand_str(UPPER32, 16))
}

pub fn aws_secret() -> String {
    rand_str(B64, 40)
}

pub fn password() -> String {
    format!("{}{}!", rand_str(ALNUM, 14), rand_str(b"0123456789", 2))
}

pub fn jwt(alg: &str) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = e(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
    let payload = e(format!(r#"{{"sub":"{}","iat":1716239022}}"#, rand_str(ALNUM, 12)).as_bytes());
    format!("{header}.{payload}.{}", rand_str(URLSAFE, 43))
}

pub fn pem_body(lines: usize) -> String {
    (0..lines).map(|_| rand_str(B64, 64) + "\n").collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn case(path: &str, content: String, expect: Vec<(&'static str, String)>) -> Case {
    Case {
        path: path.to_owned(),
        content,
        expect,
    }
}

/// The whole corpus: true secrets for every detector, then decoys.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // --- true positives -------------------------------------------------------
    let k = openai_project_key();
    v.push(case(
        "llm/openai.env",
        format!("OPENAI_API_KEY={k}\n"),
        vec![("openai-api-key", k)],
    ));
    let k = format!("{}-svcacct-{}", "sk", rand_str(URLSAFE, 120));
    v.push(case(
        "llm/openai_client.py",
        format!("from openai import OpenAI\nclient = OpenAI(api_key=\"{k}\")\n"),
        vec![("openai-api-key", k)],
    ));
    let k = anthropic_key();
    v.push(case(
        "llm/claude.py",
        format!("import anthropic\nc = anthropic.Anthropic(api_key='{k}')\n"),
        vec![("anthropic-api-key", k)],
    ));
    let k = format!("{}{}", "AI", "za".to_owned() + &rand_str(URLSAFE, 35));
    v.push(case(
        "web/maps.js",
        format!("const mapsKey = \"{k}\";\n"),
        vec![("google-api-key", k)],
    ));
    let k = rand_str(HEX, 32);
    v.push(case(
        "llm/azure.env",
        format!("AZURE_OPENAI_ENDPOINT=https://acme.openai.azure.com/\nAZURE_OPENAI_API_KEY={k}\n"),
        vec![("azure-openai-api-key", k)],
    ));
    let k = rand_str(HEX, 32);
    v.push(case(
        "llm/azure_client.py",
        format!(
            "from openai import AzureOpenAI\nclient = AzureOpenAI(\n    api_key=\"{k}\",\n    azure_endpoint=\"https://acme.openai.azure.com\",\n)\n"
        ),
        vec![("azure-openai-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(HEX, 32));
    v.push(case(
        "llm/deepseek.py",
        format!("client = OpenAI(api_key=\"{k}\", base_url=\"https://api.deepseek.com\")\n"),
        vec![("deepseek-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(HEX, 32));
    v.push(case(
        "llm/qwen.yaml",
        format!("provider: dashscope\nqwen:\n  key: {k}\n"),
        vec![("dashscope-api-key", k)],
    ));
    let k = format!("{}-{}", "sk", rand_str(ALNUM, 48));
    v.push(case(
        "llm/kimi.py",
        format!("client = OpenAI(\n    api_key=\"{k}\",\n    base_url=\"https://api.moonshot.cn/v1\",\n)\n"),
        vec![("moonshot-api-key", k)],
    ));
    let k = format!("{}.{}", rand_str(HEX, 32), rand_str(ALNUM, 16));
    v.push(case(
        "llm/glm.py",
        format!("from zhipuai import ZhipuAI\nclient = ZhipuAI(api_key=\"{k}\")\n"),
        vec![("zhipu-api-key", k)],
    ));
    let (id, secret) = (aws_key_id(), aws_secret());
    v.push(case(
        "aws/credentials.ini",
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
        vec![("aws-access-key-id", id), ("aws-secret-access-key", secret)],
    ));
    let (id, secret) = (aws_key_id(), aws_secret());
    v.push(case(
        "aws/upload.py",
        format!(
            "s3 = boto3.client(\n    's3',\n    aws_access_key_id='{id}',\n    aws_secret_access_key='{secret}',\n)\n"
        ),
        vec![("aws-access-key-id", id), ("aws-secret-access-key", secret)],
    ));
    let k = github_token('p');
    v.push(case(
        "ci/release.sh",
        format!("#!/bin/sh\ncurl -H \"Authorization: token {k}\" https://api.github.com/user\n"),
        vec![("github-token", k)],
    ));
    let k = github_token('s');
    v.push(case(
        "ci/app.json",
        format!("{{\"installation\": \"{k}\"}}\n"),
        vec![("github-token", k)],
    ));
    let k = format!("github_pat_{}_{}", rand_str(ALNUM, 22), rand_str(ALNUM, 59));
    v.push(case(
        "ci/workflow.md",
        format!("Use this token: {k}\n"),
        vec![("github-fine-grained-pat", k)],
    ));
    let k = format!("{}-{}", "glpat", rand_str(URLSAFE, 20));
    v.push(case(
        "ci/gitlab.py",
        format!("gl = gitlab.Gitlab(url, private_token='{k}')\n"),
        vec![("gitlab-token", k)],
    ));
    let k = format!(
        "{}-{}-{}-{}",
        "xoxb",
        rand_str(b"0123456789", 11),
        rand_str(b"0123456789", 13),
        rand_str(ALNUM, 24)
    );
    v.push(case(
        "chat/bot.js",
        format!("const slack = new WebClient('{k}');\n"),
        vec![("slack-token", k)],
    ));
    let k = format!(
        "https://hooks.{}.com/services/T{}/B{}/{}",
        "slack",
        rand_str(UPPER32, 8),
        rand_str(UPPER32, 10),
        rand_str(ALNUM, 24)
    );
    v.push(case(
        "chat/notify.py",
        format!("WEBHOOK = \"{k}\"\n"),
        vec![("slack-webhook-url", k)],
    ));
    let k = format!("{}_{}_{}", "sk", "live", rand_str(ALNUM, 24));
    v.push(case(
        "pay/stripe.rb",
        format!("Stripe.api_key = '{k}'\n"),
        vec![("stripe-secret-key", k)],
    ));
    let k = format!("{}_{}", "hf", rand_str(LETTERS, 34));
    v.push(case(
        "ml/hub.py",
        format!("from huggingface_hub import login\nlogin(\"{k}\")\n"),
        vec![("huggingface-token", k)],
    ));
    let k = format!(
        "{}.{}.{}",
        "SG",
        rand_str(URLSAFE, 22),
        rand_str(URLSAFE, 43)
    );
    v.push(case(
        "mail/send.js",
        format!("sgMail.setApiKey(\"{k}\");\n"),
        vec![("sendgrid-api-key", k)],
    ));
    let k = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}-----END RSA PRIVATE KEY-----",
        pem_body(20)
    );
    v.push(case(
        "deploy/id_rsa",
        format!("{k}\n"),
        vec![("private-key", k)],
    ));
    let k = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}-----END OPENSSH PRIVATE KEY-----",
        pem_body(6)
    );
    v.push(case(
        "deploy/key.pem",
        format!("{k}\n"),
        vec![("private-key", k)],
    ));
    let k = jwt("HS256");
    v.push(case(
        "web/session.ts",
        format!("export const token = \"{k}\";\n"),
        vec![("jwt", k)],
    ));
    let k = format!("app-{}", rand_str(ALNUM, 24));
    v.push(case(
        "dify/client.py",
        format!("headers = {{\"Authorization\": \"Bearer {k}\"}}\n"),
        vec![("dify-app-api-key", k)],
    ));
    let k = format!("dataset-{}", rand_str(ALNUM, 24));
    v.push(case(
        "dify/upload.sh",
        format!("curl -H 'Authorization: Bearer {k}' https://api.dify.ai/v1/datasets\n"),
        vec![("dify-dataset-api-key", k)],
    ));
    let p = password();
    v.push(case(
        "db/settings.py",
        format!("DATABASE_URL = \"postgresql://app:{p}@db.internal:5432/app\"\n"),
        vec![("postgres-url-password", p)],
    ));
    let p = format!(
        "{}@{}#{}",
        rand_str(ALNUM, 6),
        rand_str(ALNUM, 6),
        rand_str(ALNUM, 4)
    );
    let enc = p.replace('@', "%40").replace('#', "%23");
    v.push(case(
        "db/percent.env",
        format!("DATABASE_URL=postgres://dify:{enc}@db:5432/dify\n"),
        vec![("postgres-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/mysql.yaml",
        format!("url: mysql://root:{p}@mysql.prod:3306/shop\n"),
        vec![("mysql-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/cache.py",
        format!("REDIS = 'redis://:{p}@cache.internal:6379/0'\n"),
        vec![("redis-url-password", p)],
    ));
    let p = password();
    v.push(case(
        "db/queue.toml",
        format!("broker = \"amqp://worker:{p}@rabbit:5672/\"\n"),
        vec![("amqp-url-password", p)],
    ));
    let s = base64::engine::general_purpose::STANDARD.encode(rand_str(ALNUM, 42));
    v.push(case(
        "app/.env",
        format!("SECRET_KEY={s}\n"),
        vec![("secret-assignment", s)],
    ));
    let p = password();
    v.push(case(
        "app/config.yaml",
        format!("database:\n  host: db\n  password: {p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = rand_str(ALNUM, 32);
    v.push(case(
        "app/config.json",
        format!("{{\n  \"api_token\": \"{p}\"\n}}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = rand_str(ALNUM, 40);
    v.push(case(
        "app/oauth.toml",
        format!("[oauth]\nclient_secret = \"{p}\"\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/db.ini",
        format!("[db]\npassword = {p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/Dockerfile",
        format!("FROM python:3.12\nENV APP_PASSWORD={p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/docker-compose.yaml",
        format!("services:\n  db:\n    environment:\n      - POSTGRES_PASSWORD={p}\n"),
        vec![("secret-assignment", p)],
    ));
    let p = password();
    v.push(case(
        "app/compose.yml",
        format!("services:\n  api:\n    environment:\n      DB_PASSWORD: ${{DB_PASSWORD:-{p}}}\n"),
        vec![("secret-assignment", p)],
    ));
    // Kubernetes Secret: values are base64.
    let k = openai_project_key();
    let p = password();
    v.push(case(
        "k8s/secret.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm\ntype: Opaque\ndata:\n  OPENAI_API_KEY: {}\n  DB_PASSWORD: {}\n",
            b64(&k),
            b64(&p)
        ),
        vec![("openai-api-key", k), ("secret-assignment", p)],
    ));
    // Dify's shipped defaults.
    let default_pw = ["difyai", "123456"].concat();
    v.push(case(
        "dify/docker/.env",
        format!(
            "DB_PASSWORD={default_pw}\nREDIS_PASSWORD={default_pw}\nCELERY_BROKER_URL=redis://:{default_pw}@redis:6379/1\n"
        ),
        vec![("dify-default-credential", default_pw.clone())],
    ));
    v.push(case(
        "dify/sandbox.env",
        "CODE_EXECUTION_API_KEY=dify-sandbox\n".to_owned(),
        vec![("dify-default-credential", "dify-sandbox".to_owned())],
    ));
    let sk = ["sk-9f73s3ljTXVcMT3Blb3ljTqts", "KiGHXVcMT3BlbkFJLK7U"].concat();
    v.push(case(
        "dify/secret.env",
        format!("SECRET_KEY={sk}\n"),
        vec![("dify-default-credential", sk)],
    ));
    v.push(case(
        "dify/couchbase.env",
        "COUCHBASE_PASSWORD=password\n".to_owned(),
        vec![("dify-default-credential", "password".to_owned())],
    ));

    // --- decoys -----------------------------------------------------------------
    let d = |path: &str, content: String| case(path, content, vec![]);
    v.push(d("decoy/placeholders.env", "OPENAI_API_KEY=your-openai-api-key-here\nANTHROPIC_API_KEY=sk-ant-xxxxxxxxxxxxxxxxxxxxxxxx\nDB_PASSWORD=changeme\nGITHUB_TOKEN=<your-github-token>\nREDIS_PASSWORD=${REDIS_PASSWORD}\nSECRET_KEY=\n".to_owned()));
    v.push(d(
        "decoy/placeholder_key.py",
        format!("api_key = \"{}-proj-{}\"\n", "sk", "x".repeat(100)),
    ));
    v.push(d(
        "decoy/aws_docs.ini",
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            ["AKIAIOSFODNN7", "EXAMPLE"].concat(),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "EXAMPLEKEY"].concat()
        ),
    ));
    v.push(d(
        "decoy/jwt_docs.md",
        format!(
            "Example: `{}.{}.{}`\n",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            ["SflKxwRJSMeKKF2QT4fwpMeJf36P", "Ok6yJV_adQssw5c"].concat()
        ),
    ));
    v.push(d(
        "decoy/unsigned.ts",
        format!("const t = \"{}\";\n", jwt("none")),
    ));
    v.push(d(
        "decoy/stripe_docs.md",
        format!(
            "Try `{}_test_{}`.\n",
            "sk",
            ["4eC39HqLyjWDarjtT1zdp7dc"].concat()
        ),
    ));
    v.push(d("decoy/refs.py", "import os\npassword = os.environ[\"DB_PASSWORD\"]\napi_key = os.getenv('OPENAI_API_KEY')\n".to_owned()));
    v.push(d("decoy/workflow.yml", "steps:\n  - uses: actions/checkout@v4\n    with:\n      token: ${{ secrets.GITHUB_TOKEN }}\n      api_key: \"{{ vault_api_key }}\"\n".to_owned()));
    v.push(d(
        "decoy/Cargo.lock",
        format!(
            "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nchecksum = \"{}\"\n",
            rand_str(HEX, 64)
        ),
    ));
    v.push(d(
        "decoy/package-lock.json",
        format!(
            "{{\n  \"node_modules/x\": {{\n    \"integrity\": \"sha512-{}==\",\n    \"token\": \"{}\"\n  }}\n}}\n",
            rand_str(B64, 86),
            rand_str(ALNUM, 30)
        ),
    ));
    v.push(d(
        "decoy/yarn.lock",
        format!(
            "x@^1.0.0:\n  version \"1.0.0\"\n  integrity sha512-{}==\n",
            rand_str(B64, 86)
        ),
    ));
    v.push(d(
        "decoy/uuids.yaml",
        "request_token: 123e4567-e89b-12d3-a456-426614174000\nsession_secret: 9b2c4f1e-8d7a-4c3b-a2e1-0f9e8d7c6b5a\n".to_owned(),
    ));
    v.push(d(
        "decoy/.pre-commit-config.yaml",
        format!(
            "repos:\n  - repo: https://github.com/x/y\n    rev: {}\n",
            rand_str(HEX, 40)
        ),
    ));
    v.push(d(
        "decoy/commits.json",
        format!(
            "{{\"sha\": \"{}\", \"tree\": \"{}\"}}\n",
            rand_str(HEX, 40),
            rand_str(HEX, 40)
        ),
    ));
    v.push(d(
        "decoy/public.pem",
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
            pem_body(6)
        ),
    ));
    v.push(d(
        "decoy/authorized_keys",
        format!(
            "ssh-rsa AAAAB3NzaC1yc2E{} deploy@host\n",
            rand_str(B64, 300)
        ),
    ));
    v.push(d(
        "decoy/public.env",
        format!(
            "TIDB_PUBLIC_KEY={}\nSTRIPE_PUBLISHABLE_KEY=pk_live_{}\n",
            rand_str(ALNUM, 24),
            rand_str(ALNUM, 24)
        ),
    ));
    v.push(d(
        "decoy/logo.html",
        format!(
            "<img src=\"data:image/png;base64,{}\">\n",
            base64::engine::general_purpose::STANDARD
                .encode((0..300).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>())
        ),
    ));
    v.push(d(
        "decoy/bad_crc.sh",
        format!("TOKEN={}\n", github_token_bad_crc()),
    ));
    v.push(d("decoy/i18n.json", "{\n  \"password\": \"Passwort\",\n  \"token\": \"Zugangsschlüssel\",\n  \"passwordPlaceholder\": \"Bitte Passwort eingeben\"\n}\n".to_owned()));
    v.push(d("decoy/test.toml", "[database]\nurl = \"postgres://postgres:password@localhost/test\"\nother = \"mysql://root:root@127.0.0.1:3306/db\"\n".to_owned()));
    v.push(d("decoy/ref_url.env", "DATABASE_URL=postgres://user:${DB_PASS}@db/app\nREDIS_URL=redis://:<password>@redis:6379\n".to_owned()));
    v.push(d("decoy/dify_settings.env", "ACCESS_TOKEN_EXPIRE_MINUTES=60\nPROMPT_GENERATION_MAX_TOKENS=512\nREFRESH_TOKEN_EXPIRE_DAYS=30\nNGINX_SSL_CERT_KEY_FILENAME=dify.key\nHTTP_REQUEST_NODE_SSL_CLIENT_KEY_DATA=\nWEAVIATE_TOKENIZATION=word\nPLUGIN_BASED_TOKEN_COUNTING_ENABLED=false\n".to_owned()));
    v.push(d(
        "decoy/README.md",
        "```\n-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n```\n".to_owned(),
    ));
    v.push(d(
        "decoy/image.yaml",
        format!("image: nginx@sha256:{}\n", rand_str(HEX, 64)),
    ));
    v.push(d(
        "decoy/code.py",
        "tokens = tokenize(text)\nsecret_name = 'DB_PASSWORD'\npassword_field = form.password\n"
            .to_owned(),
    ));
    // One decoy per provider detector: right prefix, wrong content.
    v.push(d(
        "decoy/anthropic.md",
        format!("`{}-ant-api03-{}AA`\n", "sk", "X".repeat(93)),
    ));
    v.push(d(
        "decoy/google.js",
        format!("const key = \"{}za{}\";\n", "AI", "X".repeat(35)),
    ));
    v.push(d(
        "decoy/azure.env",
        format!(
            "AZURE_OPENAI_ENDPOINT=https://x.openai.azure.com\nAZURE_OPENAI_API_KEY={}\n",
            "0".repeat(32)
        ),
    ));
    v.push(d(
        "decoy/deepseek.py",
        format!(
            "# deepseek\nKEY = \"{}-{}\"\n",
            "sk",
            "0123456789abcdef".repeat(2)
        ),
    ));
    v.push(d(
        "decoy/moonshot.css",
        format!(
            ".{}-{} {{ color: red }}\n",
            "sk",
            "abcdefghij".repeat(5).get(..48).unwrap()
        ),
    ));
    v.push(d(
        "decoy/zhipu_no_context.txt",
        format!("build {}.{}\n", rand_str(HEX, 32), rand_str(ALNUM, 16)),
    ));
    v.push(d(
        "decoy/aws_no_context.txt",
        format!("digest: {}\n", rand_str(B64, 40)),
    ));
    v.push(d(
        "decoy/gitlab.md",
        format!("`{}-{}`\n", "glpat", "x".repeat(20)),
    ));
    v.push(d(
        "decoy/slack.md",
        format!("SLACK_BOT_TOKEN={}-your-bot-token\n", "xoxb"),
    ));
    v.push(d(
        "decoy/slack_webhook.md",
        format!(
            "https://hooks.{}.com/services/T00000000/B00000000/{}\n",
            "slack",
            "X".repeat(24)
        ),
    ));
    v.push(d(
        "decoy/hf.py",
        format!("token = \"{}_{}\"\n", "hf", "x".repeat(34)),
    ));
    v.push(d(
        "decoy/sendgrid.md",
        format!("`{}.{}.{}`\n", "SG", "x".repeat(22), "x".repeat(43)),
    ));
    v.push(d(
        "decoy/dify_words.css",
        ".app-containerizationlayouts { }\n.dataset-documentuploadpanel { }\n".to_owned(),
    ));
    v.push(d(
        "decoy/github_pat.md",
        format!("`github_pat_{}_{}`\n", "X".repeat(22), "X".repeat(59)),
    ));
    v.push(d(
        "decoy/allowed.env",
        format!("API_TOKEN={} # envseal:allow\n", rand_str(ALNUM, 32)),
    ));
    v.push(d(
        "decoy/allowed_gitleaks.py",
        format!("key = \"{}\"  # gitleaks:allow\n", github_token('p')),
    ));
    v
}

/// Random lowercase UUID.
pub fn uuid() -> String {
    let h = rand_str(HEX, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `n` random base62 characters followed by their six-character base62 CRC32.
pub fn crc_tail(n: usize) -> String {
    let random = rand_str(ALNUM, n);
    let check = base62_6(crc32fast::hash(random.as_bytes()));
    format!("{random}{check}")
}

/// Source-code and configuration placements of a value `K` under a name `N`.
const PLACEMENTS: &[(&str, &str)] = &[
    ("py", "from client import Client\nclient = Client(api_key=\"@K@\")\n"),
    ("ts", "export const config = {\n  apiKey: '@K@',\n  retries: 3,\n};\n"),
    ("go", "package main\n\nconst @N@ = \"@K@\"\n"),
    ("rs", "fn main() {\n    let token = r#\"@K@\"#;\n    println!(\"{}\", token.len());\n}\n"),
    ("rb", "@N@ = '@K@'.freeze\n"),
    ("java", "class Keys {\n    private static final String @N@ = \"@K@\";\n}\n"),
    ("cs", "public static class Keys {\n    public const string ApiKey = @\"@K@\";\n}\n"),
    ("php", "<?php\ndefine('@N@', '@K@');\n"),
    ("sh", "#!/bin/sh\nexport @N@=\"@K@\"\nexec ./serve\n"),
    ("tf", "resource \"dify_provider\" \"llm\" {\n  api_key = \"@K@\"\n}\n"),
    ("k8s.yaml", "env:\n  - name: @N@\n    value: \"@K@\"\n"),
    ("values.yaml", "api:\n  extraEnv:\n    - name: @N@\n      value: @K@\n"),
    ("block.yaml", "data:\n  app.env: |\n    LOG_LEVEL=info\n    @N@=@K@\n"),
    ("compose.yaml", "services:\n  api:\n    environment:\n      @N@: @K@\n"),
    ("compose-list.yml", "services:\n  worker:\n    environment:\n      - @N@=@K@\n"),
    ("settings.json", "{\n  \"@N@\": \"@K@\"\n}\n"),
    ("analysis.ipynb", "{\"cells\": [{\"cell_type\": \"code\", \"outputs\": [{\"name\": \"stdout\", \"text\": [\"@N@ = '@K@'\\n\"]}], \"source\": [\"print(os.environ['@N@'])\"]}]}\n"),
    ("quoted.env", "@N@=\"@K@\"\n"),
    ("Dockerfile", "FROM python:3.12\nENV @N@=@K@\n"),
    ("pyproject.toml", "[tool.app]\nn = \"@K@\"\n"),
];

/// The second corpus: every rule-file provider and the placements of issue 11, plus
/// decoys of the kinds real repositories are full of.
pub fn breadth_cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Prefixed keys, each placed in a rotating set of languages and file kinds.
    let prefixed: Vec<(&'static str, &'static str, String)> = vec![
        (
            "groq-api-key",
            "GROQ_API_KEY",
            format!("gsk_{}", rand_str(ALNUM, 52)),
        ),
        (
            "xai-api-key",
            "XAI_API_KEY",
            format!("xai-{}", rand_str(ALNUM, 80)),
        ),
        (
            "openrouter-api-key",
            "OPENROUTER_API_KEY",
            format!("sk-or-v1-{}", rand_str(HEX, 64)),
        ),
        (
            "perplexity-api-key",
            "PPLX_API_KEY",
            format!("pplx-{}", rand_str(ALNUM, 48)),
        ),
        (
            "replicate-api-token",
            "REPLICATE_API_TOKEN",
            format!("r8_{}", rand_str(ALNUM, 37)),
        ),
        (
            "tavily-api-key",
            "TAVILY_API_KEY",
            format!("tvly-dev-{}", rand_str(ALNUM, 32)),
        ),
        (
            "firecrawl-api-key",
            "FIRECRAWL_API_KEY",
            format!("fc-{}", rand_str(HEX, 32)),
        ),
        (
            "jina-api-key",
            "JINA_API_KEY",
            format!("jina_{}{}", rand_str(HEX, 32), rand_str(ALNUM, 28)),
        ),
        (
            "langsmith-api-key",
            "LANGSMITH_API_KEY",
            format!("lsv2_pt_{}_{}", rand_str(HEX, 32), rand_str(HEX, 10)),
        ),
        (
            "langfuse-secret-key",
            "LANGFUSE_SECRET_KEY",
            format!("sk-lf-{}", uuid()),
        ),
        (
            "pinecone-api-key",
            "PINECONE_API_KEY",
            format!("pcsk_{}_{}", rand_str(ALNUM, 6), rand_str(ALNUM, 63)),
        ),
        (
            "notion-integration-token",
            "NOTION_TOKEN",
            format!("ntn_{}{}", rand_str(b"0123456789", 11), rand_str(ALNUM, 35)),
        ),
        (
            "together-api-key",
            "TOGETHER_API_KEY",
            format!("tgp_v1_{}", rand_str(URLSAFE, 43)),
        ),
        (
            "fireworks-api-key",
            "FIREWORKS_API_KEY",
            format!("fw_{}", rand_str(ALNUM, 24)),
        ),
        (
            "volcengine-access-key-id",
            "VOLC_ACCESSKEY",
            format!("AKLT{}", rand_str(ALNUM, 40)),
        ),
        (
            "discord-webhook-url",
            "DISCORD_WEBHOOK",
            format!(
                "https://discord.com/api/webhooks/{}/{}",
                rand_str(b"0123456789", 19),
                rand_str(URLSAFE, 68)
            ),
        ),
        (
            "telegram-bot-token",
            "TELEGRAM_BOT_TOKEN",
            format!("{}:AA{}", rand_str(b"123456789", 10), rand_str(URLSAFE, 33)),
        ),
        (
            "stripe-webhook-secret",
            "STRIPE_WEBHOOK_SECRET",
            format!("whsec_{}", rand_str(ALNUM, 32)),
        ),
        (
            "resend-api-key",
            "RESEND_API_KEY",
            format!("re_{}_{}", rand_str(ALNUM, 8), rand_str(ALNUM, 24)),
        ),
        (
            "npm-access-token",
            "NPM_TOKEN",
            format!("npm_{}", crc_tail(30)),
        ),
        (
            "pypi-api-token",
            "PYPI_TOKEN",
            format!("pypi-AgEIcHlwaS5vcmc{}", rand_str(URLSAFE, 140)),
        ),
        (
            "docker-hub-token",
            "DOCKERHUB_TOKEN",
            format!("dckr_pat_{}", rand_str(URLSAFE, 27)),
        ),
        (
            "atlassian-api-token",
            "JIRA_API_TOKEN",
            format!(
                "ATATT3xFfGF0{}={}",
                rand_str(URLSAFE, 170),
                rand_str(b"0123456789ABCDEF", 8)
            ),
        ),
        (
            "alibaba-access-key-id",
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            format!("LTAI{}", rand_str(ALNUM, 20)),
        ),
        (
            "tencent-secret-id",
            "TENCENTCLOUD_SECRET_ID",
            format!("AKID{}", rand_str(ALNUM, 32)),
        ),
        (
            "digitalocean-token",
            "DIGITALOCEAN_TOKEN",
            format!("dop_v1_{}", rand_str(HEX, 64)),
        ),
        (
            "supabase-access-token",
            "SUPABASE_ACCESS_TOKEN",
            format!("sbp_{}", rand_str(HEX, 40)),
        ),
        (
            "supabase-secret-key",
            "SUPABASE_SECRET_KEY",
            format!("sb_secret_{}", rand_str(URLSAFE, 31)),
        ),
        (
            "vercel-prefixed-token",
            "VERCEL_TOKEN",
            format!("vcp_{}", rand_str(ALNUM, 56)),
        ),
        (
            "sentry-auth-token",
            "SENTRY_AUTH_TOKEN",
            format!("sntryu_{}", rand_str(HEX, 64)),
        ),
        (
            "vault-token",
            "VAULT_TOKEN",
            format!("hvs.{}", rand_str(URLSAFE, 91)),
        ),
        (
            "doppler-token",
            "DOPPLER_TOKEN",
            format!("dp.st.{}", rand_str(ALNUM, 43)),
        ),
        (
            "infisical-service-token",
            "INFISICAL_TOKEN",
            format!("st.{}.{}.{}", uuid(), rand_str(HEX, 32), rand_str(HEX, 32)),
        ),
        (
            "onepassword-service-account-token",
            "OP_SERVICE_ACCOUNT_TOKEN",
            format!("ops_eyJ{}", rand_str(B64, 400)),
        ),
        (
            "envseal-token",
            "ENVSEAL_TOKEN",
            format!("est_{}", rand_str(URLSAFE, 43)),
        ),
        (
            "cloudflare-origin-ca-key",
            "CF_ORIGIN_CA_KEY",
            format!("v1.0-{}-{}", rand_str(HEX, 24), rand_str(HEX, 146)),
        ),
        ("github-token", "GITHUB_TOKEN", github_token('p')),
        ("openai-api-key", "OPENAI_API_KEY", openai_project_key()),
        ("anthropic-api-key", "ANTHROPIC_API_KEY", anthropic_key()),
        (
            "anthropic-api-key",
            "ANTHROPIC_ADMIN_KEY",
            format!("{}-ant-admin01-{}AA", "sk", rand_str(URLSAFE, 93)),
        ),
        (
            "anthropic-api-key",
            "CLAUDE_CODE_OAUTH_TOKEN",
            format!("{}-ant-oat01-{}AA", "sk", rand_str(URLSAFE, 93)),
        ),
        (
            "openai-api-key",
            "OPENAI_ADMIN_KEY",
            format!("{}-admin-{}", "sk", rand_str(URLSAFE, 120)),
        ),
    ];
    for (i, (rule, name, key)) in prefixed.into_iter().enumerate() {
        for j in 0..3 {
            let (ext, tpl) = PLACEMENTS[(i * 3 + j) % PLACEMENTS.len()];
            let content = tpl.replace("@N@", name).replace("@K@", &key);
            v.push(case(
                &format!("breadth/{rule}/{j}.{ext}"),
                content,
                vec![(rule, key.clone())],
            ));
        }
    }
    // Keys without a prefix: they count beside their provider's name.
    let contextual: Vec<(&'static str, String, String)> = {
        let mut c = Vec::new();
        let k = rand_str(ALNUM, 32);
        c.push((
            "mistral-api-key",
            format!("from mistralai import Mistral\nclient = Mistral(api_key=\"{k}\")\n"),
            k,
        ));
        let k = rand_str(ALNUM, 40);
        c.push(("cohere-api-key", format!("COHERE_API_KEY={k}\n"), k));
        let k = rand_str(HEX, 40);
        c.push((
            "serper-api-key",
            format!("tools:\n  serper:\n    api_key: \"{k}\"\n"),
            k,
        ));
        let k = rand_str(HEX, 32);
        c.push((
            "twilio-auth-token",
            format!(
                "TWILIO_ACCOUNT_SID=AC{}\nTWILIO_AUTH_TOKEN={k}\n",
                rand_str(HEX, 32)
            ),
            k,
        ));
        let k = format!("key-{}", rand_str(HEX, 32));
        c.push((
            "mailgun-api-key",
            format!("MAILGUN_DOMAIN=mg.acme.io\nMAILGUN_API_KEY={k}\n"),
            k,
        ));
        let k = rand_str(HEX, 32);
        c.push((
            "datadog-api-key",
            format!("DD_API_KEY={k}\nDD_SITE=datadoghq.eu\n"),
            k,
        ));
        let k = rand_str(URLSAFE, 40);
        c.push((
            "cloudflare-api-token",
            format!("CLOUDFLARE_API_TOKEN={k}\n"),
            k,
        ));
        let k = rand_str(ALNUM, 24);
        c.push(("vercel-token", format!("VERCEL_TOKEN={k}\n"), k));
        let k = rand_str(ALNUM, 32);
        c.push((
            "tencent-secret-key",
            format!("TENCENTCLOUD_SECRET_KEY={k}\n"),
            k,
        ));
        let k = rand_str(HEX, 64);
        c.push((
            "together-legacy-api-key",
            format!("TOGETHER_API_KEY={k}\n"),
            k,
        ));
        let k = rand_str(ALNUM, 30);
        c.push((
            "alibaba-access-key-secret",
            format!("ALIBABA_CLOUD_ACCESS_KEY_SECRET={k}\n"),
            k,
        ));
        let k = uuid();
        c.push(("volcengine-ark-api-key", format!("ARK_API_KEY={k}\n"), k));
        let k = uuid();
        c.push((
            "pinecone-legacy-api-key",
            format!("PINECONE_API_KEY={k}\n"),
            k,
        ));
        let k = rand_str(HEX, 64);
        c.push((
            "infisical-client-secret",
            format!("INFISICAL_CLIENT_SECRET={k}\n"),
            k,
        ));
        let k = format!("{}-{}", "sk", rand_str(b"abcdefghijklmnopqrstuvwxyz", 48));
        c.push((
            "siliconflow-api-key",
            format!("provider: siliconflow\napi_key: {k}\n"),
            k,
        ));
        let k = format!("{}-api-{}", "sk", rand_str(URLSAFE, 100));
        c.push(("minimax-api-key", format!("MINIMAX_API_KEY={k}\n"), k));
        let k = format!(
            "M{}.{}.{}",
            rand_str(ALNUM, 25),
            rand_str(URLSAFE, 6),
            rand_str(URLSAFE, 38)
        );
        c.push(("discord-bot-token", format!("DISCORD_BOT_TOKEN={k}\n"), k));
        let k = format!("secret_{}", rand_str(ALNUM, 43));
        c.push((
            "notion-legacy-integration-token",
            format!("NOTION_API_KEY={k}\n"),
            k,
        ));
        let k = format!("{}==", rand_str(B64, 86));
        c.push(("azure-storage-account-key", format!("AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={k};EndpointSuffix=core.windows.net\n"), k));
        let k = format!("{}==", rand_str(B64, 86));
        c.push((
            "azure-storage-key-assignment",
            format!("AZURE_STORAGE_KEY={k}\n"),
            k,
        ));
        let k = rand_str(HEX, 40);
        c.push(("datadog-api-key", format!("datadog:\n  app_key: {k}\n"), k));
        c
    };
    for (i, (rule, content, k)) in contextual.into_iter().enumerate() {
        let ext = if content.contains(":\n") {
            "yaml"
        } else {
            "env"
        };
        v.push(case(
            &format!("context/{i}-{rule}.{ext}"),
            content,
            vec![(rule, k)],
        ));
    }
    // Credential files.
    let k = crc_tail(30);
    let k = format!("npm_{k}");
    v.push(case(
        "creds/.npmrc",
        format!("registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={k}\n"),
        vec![("npm-access-token", k)],
    ));
    let k = rand_str(ALNUM, 40);
    v.push(case(
        "creds/internal/.npmrc",
        format!("//npm.internal.acme.io/:_authToken={k}\nalways-auth=true\n"),
        vec![("npmrc-auth", k)],
    ));
    let k = format!("pypi-AgEIcHlwaS5vcmc{}", rand_str(URLSAFE, 150));
    v.push(case(
        "creds/.pypirc",
        format!(
            "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {k}\n"
        ),
        vec![("pypi-api-token", k)],
    ));
    let k = rand_str(ALNUM, 40);
    v.push(case(
        "creds/.netrc",
        format!("machine api.acme.io\n  login deploy\n  password {k}\n"),
        vec![("netrc-password", k)],
    ));
    let k = rand_str(ALNUM, 40);
    v.push(case(
        "creds/.git-credentials",
        format!("https://oauth2:{k}@gitlab.acme.io\n"),
        vec![("git-credential-url", k)],
    ));
    let auth = b64(&format!("deploy:{}", rand_str(ALNUM, 36)));
    v.push(case(
        "creds/docker/config.json",
        format!("{{\n  \"auths\": {{\n    \"registry.acme.io\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n"),
        vec![("docker-config-auth", auth)],
    ));
    // Generic secret-named literals in source code.
    let code: &[(&str, &str)] = &[
        (
            "src/client.py",
            "import requests\n\nSESSION_SECRET = \"@K@\"\n",
        ),
        (
            "src/api.ts",
            "export default {\n  clientSecret: \"@K@\",\n};\n",
        ),
        ("src/main.go", "package main\n\nvar authToken = \"@K@\"\n"),
        ("src/lib.rs", "pub const API_KEY: &str = \"@K@\";\n"),
        ("src/app.rb", "config.secret_token = '@K@'\n"),
        ("src/App.java", "String password = \"@K@\";\n"),
        ("src/Program.cs", "var accessToken = \"@K@\";\n"),
        ("src/config.php", "<?php\n$config['api_key'] = '@K@';\n"),
        ("scripts/deploy.sh", "DEPLOY_TOKEN='@K@' ./deploy\n"),
        (
            "infra/main.tf",
            "variable \"db\" {\n  default = {\n    password = \"@K@\"\n  }\n}\n",
        ),
        (
            "src/settings.py",
            "DATABASES = {'default': {'PASSWORD': '@K@'}}\n",
        ),
        ("src/client.kt", "val apiKey = \"@K@\"\n"),
    ];
    for (path, tpl) in code {
        let k = rand_str(ALNUM, 32);
        v.push(case(
            path,
            tpl.replace("@K@", &k),
            vec![("generic-code-secret", k)],
        ));
    }
    // Kubernetes env lists and Helm values with generic secrets.
    let k = password();
    v.push(case(
        "k8s/deployment.yaml",
        format!("spec:\n  containers:\n    - name: api\n      env:\n        - name: LOG_LEVEL\n          value: info\n        - name: DB_PASSWORD\n          value: \"{k}\"\n"),
        vec![("kubernetes-env-secret", k)],
    ));
    let k = rand_str(URLSAFE, 42);
    v.push(case(
        "helm/values-prod.yaml",
        format!("api:\n  extraEnv:\n    - name: SECRET_KEY\n      value: {k}\n"),
        vec![("kubernetes-env-secret", k)],
    ));
    // .env quoting.
    for (i, shape) in ["%{}", "a#{}", "{}@x", "%{}#"].iter().enumerate() {
        let k = shape.replace("{}", &password());
        v.push(case(
            &format!("dotenv/{i}/.env"),
            format!("DB_PASSWORD=\"{k}\"\n"),
            vec![("secret-assignment", k)],
        ));
    }
    // --- decoys ---------------------------------------------------------------------
    let d = |path: &str, content: String| case(path, content, vec![]);
    for (i, zero) in [
        format!("GROQ_API_KEY=gsk_{}", "0".repeat(52)),
        format!("NPM_TOKEN=npm_{}", "0".repeat(36)),
        format!("VAULT_TOKEN=hvs.{}", "ab".repeat(46)),
        format!("DIGITALOCEAN_TOKEN=dop_v1_{}", "0".repeat(64)),
        "TAVILY_API_KEY=tvly-YOUR_API_KEY_HERE".to_owned(),
        "FIRECRAWL_API_KEY=fc-your-key-here".to_owned(),
        format!("SUPABASE_ACCESS_TOKEN=sbp_{}", "0123456789".repeat(4)),
        format!("SERPER_API_KEY={}", "0".repeat(40)),
        format!("DD_API_KEY={}", "abc".repeat(10) + "ab"),
        "ARK_API_KEY=00000000-0000-0000-0000-000000000000".to_owned(),
        format!("LANGFUSE_PUBLIC_KEY=pk-lf-{}", uuid()),
        format!(
            "SUPABASE_PUBLISHABLE_KEY=sb_publishable_{}",
            rand_str(URLSAFE, 31)
        ),
        "OPENROUTER_API_KEY=${OPENROUTER_API_KEY}".to_owned(),
        "GROQ_API_KEY={{ .Values.groq.key }}".to_owned(),
        "api_key = var.groq_api_key".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        v.push(d(&format!("decoy2/placeholder{i}.env"), zero + "\n"));
    }
    v.push(d(
        "decoy2/npm-bad-checksum.md",
        format!(
            "A token looks like `npm_{}` (checksum not valid).\n",
            rand_str(ALNUM, 36)
        ),
    ));
    v.push(d(
        "decoy2/yarn.lock",
        format!(
            "\"left-pad@^1.3.0\":\n  version \"1.3.0\"\n  resolved \"https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz#{}\"\n  integrity sha512-{}==\n",
            rand_str(HEX, 40),
            rand_str(B64, 86)
        ),
    ));
    v.push(d(
        "decoy2/package-lock.json",
        format!("{{\n  \"packages\": {{\n    \"node_modules/a\": {{\n      \"integrity\": \"sha512-{}==\"\n    }}\n  }}\n}}\n", rand_str(B64, 86)),
    ));
    v.push(d(
        "decoy2/model.bin",
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 4823\n",
            rand_str(HEX, 64)
        ),
    ));
    v.push(d(
        "decoy2/deploy.yaml",
        format!("image: ghcr.io/acme/api@sha256:{}\n", rand_str(HEX, 64)),
    ));
    v.push(d(
        "decoy2/trace.log",
        format!(
            "trace_id={} span_id={} status=ok\n",
            rand_str(HEX, 32),
            rand_str(HEX, 16)
        ),
    ));
    v.push(d(
        "decoy2/id_ed25519.pub",
        format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} deploy@ci\n",
            rand_str(B64, 43)
        ),
    ));
    v.push(d(
        "decoy2/public.pem",
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
            pem_body(6)
        ),
    ));
    v.push(d(
        "decoy2/checksums.txt",
        format!(
            "{}  envseal-linux-amd64.tar.gz\n{}  envseal-darwin-arm64.tar.gz\n",
            rand_str(HEX, 64),
            rand_str(HEX, 64)
        ),
    ));
    v.push(d(
        "decoy2/commit.md",
        format!("Fixed in commit {} (see #123).\n", rand_str(HEX, 40)),
    ));
    v.push(d(
        "decoy2/main.tf",
        "resource \"aws_db_instance\" \"db\" {\n  password = var.db_password\n}\n".to_owned(),
    ));
    v.push(d(
        "decoy2/values.yaml",
        "api:\n  extraEnv:\n    - name: OPENAI_API_KEY\n      valueFrom:\n        secretKeyRef:\n          name: llm\n          key: openai\n".to_owned(),
    ));
    v.push(d(
        "decoy2/compose.yaml",
        "services:\n  api:\n    environment:\n      SECRET_KEY: ${SECRET_KEY}\n      DB_PASSWORD: ${DB_PASSWORD:?set it}\n".to_owned(),
    ));
    v.push(d(
        "decoy2/client.py",
        "api_key = os.environ[\"GROQ_API_KEY\"]\ntoken = get_token()\npassword = getpass.getpass()\n".to_owned(),
    ));
    v.push(d(
        "decoy2/errors.ts",
        "throw new Error(\"invalid api key: check your settings\");\nconst tokenType = \"Bearer\";\n".to_owned(),
    ));
    v.push(d(
        "decoy2/test_auth.py",
        "def test_token_refresh_rotates_the_session():\n    assert rotate() is not None\n"
            .to_owned(),
    ));
    v.push(d(
        "decoy2/uuid.env",
        format!("TENANT_ID={}\nAPP_ID={}\n", uuid(), uuid()),
    ));
    v.push(d(
        "decoy2/notebook.ipynb",
        "{\"cells\": [{\"outputs\": [{\"text\": [\"api_key = os.environ['OPENAI_API_KEY']\\n\"]}]}]}\n".to_owned(),
    ));
    v.push(d(
        "decoy2/docker/config.json",
        "{\n  \"auths\": {\n    \"ghcr.io\": {}\n  },\n  \"credsStore\": \"desktop\"\n}\n"
            .to_owned(),
    ));
    v.push(d(
        "decoy2/.npmrc",
        "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n".to_owned(),
    ));
    v.push(d(
        "decoy2/.git-credentials",
        "https://user:${GIT_TOKEN}@github.com\n".to_owned(),
    ));
    v.push(d(
        "decoy2/.netrc",
        "machine api.github.com login bot password $GITHUB_TOKEN\n".to_owned(),
    ));
    v.push(d(
        "decoy2/azurite.env",
        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1\n".to_owned(),
    ));
    v.push(d(
        "decoy2/hashes.py",
        format!(
            "EXPECTED_SHA256 = \"{}\"\nEMPTY_MD5 = \"d41d8cd98f00b204e9800998ecf8427e\"\n",
            rand_str(HEX, 64)
        ),
    ));
    v.push(d(
        "decoy2/i18n.json",
        "{\n  \"password\": \"Password\",\n  \"token_expired\": \"Your session token has expired\"\n}\n".to_owned(),
    ));
    v.push(d(
        "decoy2/docs.md",
        "Set `GROQ_API_KEY=gsk_...` and `TAVILY_API_KEY=tvly-...` in `.env`.\n".to_owned(),
    ));
    v.push(d(
        "decoy2/go.sum",
        format!("github.com/a/b v1.2.3 h1:{}=\n", rand_str(B64, 43)),
    ));
    v.push(d(
        "decoy2/fixtures.env",
        "ACCESS_TOKEN_EXPIRE_MINUTES=60\nMAX_TOKENS=4096\nTOKEN_TYPE=bearer\n".to_owned(),
    ));
    v.push(d(
        "decoy2/css.css",
        ".fc-toolbar { color: #fff }\n.est_banner { display: none }\n".to_owned(),
    ));
    v.push(d(
        "decoy2/regex.py",
        "re_email = re.compile(r\"[a-z]+@[a-z]+\")\nre_compile_cache = {}\n".to_owned(),
    ));
    v
}

/// Both corpora.
pub fn all_cases() -> Vec<Case> {
    let mut v = cases();
    v.extend(breadth_cases());
    v
}
